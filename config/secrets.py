"""Where a password comes from: an environment variable or a file, never the config itself."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, SecretStr, model_validator


class SecretSource(BaseModel):
    """`{env: NAME}` or `{file: PATH}`; resolved only when a connection logs in."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    env: str | None = None
    file: Path | None = None

    @model_validator(mode="before")
    @classmethod
    def _not_inline(cls, data: Any) -> Any:
        if isinstance(data, str | int):
            raise ValueError(
                "write {env: NAME} or {file: PATH}: a password is never kept in the config"
            )
        return data

    @model_validator(mode="after")
    def _exactly_one(self) -> SecretSource:
        if (self.env is None) == (self.file is None):
            raise ValueError("give exactly one of 'env' or 'file'")
        return self

    def resolve(self) -> SecretStr:
        if self.env is not None:
            value = os.environ.get(self.env)
            if value is None:
                raise LookupError(f"environment variable {self.env} is not set")
            return SecretStr(value)
        assert self.file is not None
        try:
            return SecretStr(self.file.read_text(encoding="utf-8").rstrip("\r\n"))
        except OSError as exc:
            raise LookupError(f"cannot read secret file {self.file}: {exc.strerror}") from exc

    def __str__(self) -> str:
        return f"env:{self.env}" if self.env else f"file:{self.file}"
