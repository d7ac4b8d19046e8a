"""Byte-exact raw LLM trace fixtures, built from the header and sample rows in traces.md.

Line endings and the final newline are part of the format: Azure 2023 files are CRLF with no
newline after the last row; BurstGPT and Azure 2024 are written LF-terminated here (their raw
line endings are not documented; the reader accepts both).
"""

from __future__ import annotations

import gzip
from pathlib import Path

BURSTGPT_1 = (
    b"Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type\n"
    b"5,ChatGPT,472,18,490,Conversation log\n"
    b"45,ChatGPT,1087,230,1317,Conversation log\n"
    b"118,GPT-4,417,276,693,Conversation log\n"
    b"118,ChatGPT,0,35,35,API log\n"
    b"130,GPT-4,812,0,812,API log\n"
)

BURSTGPT_3 = (
    b"Timestamp,Session ID,Elapsed time,Model,Request tokens,Response tokens,Total tokens,Log Type\n"
    b"19440110.0,1722ac82-0a46-4bf0-aa08-89794e7a2b3f,43,GPT-4,906,446,1352,Conversation log\n"
    b"19440161.0,d5983bf9-4b48-497b-892b-a58995247443,2,ChatGPT,36,29,65,Conversation log\n"
    b"19440192.0,a5c69b35-4fbc-45e9-955e-18715e376d74,8,GPT-4,1779,123,1902,Conversation log\n"
    b"19440254.0,8b74c7d8-1643-4bba-8c69-91cb4548c506,3,ChatGPT,935,178,1113,Conversation log\n"
    b"19440301.0,,4,ChatGPT,120,0,120,API log\n"
)

AZURE_2023_CODE = (
    b"TIMESTAMP,ContextTokens,GeneratedTokens\r\n"
    b"2023-11-16 18:17:03.9799600,4808,10\r\n"
    b"2023-11-16 18:17:04.0319600,3180,8\r\n"
    b"2023-11-16 18:17:04.0781490,110,27\r\n"
    b"2023-11-16 19:14:19.9280160,549,173"
)

AZURE_2024_CODE = (
    b"TIMESTAMP,ContextTokens,GeneratedTokens\n"
    b"2024-05-10 00:00:00.009930+00:00,2162,5\n"
    b"2024-05-10 00:00:00.017335+00:00,2399,6\n"
    b"2024-05-10 00:00:00.022314+00:00,76,15\n"
    b"2024-05-10 00:00:01+00:00,311,40\n"
    b"2024-05-16 23:59:59.929501+00:00,4725,8\n"
)

AZURE_LMM_2025 = (
    b"TIMESTAMP,NumImages,ContextTokens,GeneratedTokens\n"
    b"2024-10-15T12:00:00.269Z,0,770,491\n"
    b"2024-10-15T12:00:05.819Z,1,949,126\n"
    b"2024-10-15T12:00:06.513Z,1,964,79\n"
    b"2024-10-22T11:59:59.539Z,16,4564,137\n"
    b"2024-10-22T11:59:59.964Z,0,841,63\n"
)


def write(dir_: Path, name: str, data: bytes, *, gz: bool = False) -> Path:
    dir_.mkdir(parents=True, exist_ok=True)
    path = dir_ / name
    path.write_bytes(gzip.compress(data, mtime=0) if gz else data)
    return path
