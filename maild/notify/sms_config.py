"""The ``sms:`` section of the configuration: the HTTP gateway's request, as templates.

Only the schema and its checks live here (the configuration imports it); the queue and
the sender thread that use it are in :mod:`maild.notify.sms`.
"""
from __future__ import annotations

import os
import re
from typing import Literal

import jinja2
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


class SmsGateway(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str  # a template: {{ phone }}, {{ text }}
    method: Literal["POST", "GET", "PUT"] = "POST"
    headers: dict[str, str] = {}
    headers_env: dict[str, str] = {}  # header name → environment variable holding its value (secrets)
    body: str = '{"to": {{ phone|tojson }}, "text": {{ text|tojson }}}'  # a template; empty for GET
    timeout: float = Field(default=10.0, gt=0)
    max_length: int = Field(default=480, gt=0)  # longer texts are cut (3 concatenated SMS)

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        if not re.match(r"https?://", value):
            raise ValueError("must be an http:// or https:// URL")
        return value

    @model_validator(mode="after")
    def _templates(self) -> SmsGateway:
        env = template_env()
        for what in ("url", "body"):
            try:
                env.from_string(getattr(self, what))
            except jinja2.TemplateSyntaxError as exc:
                raise ValueError(f"{what}: template error: {exc.message}") from exc
        for header, var in self.headers_env.items():
            if not os.environ.get(var):
                raise ValueError(f"headers_env.{header} names {var!r}, which is not set")
        return self


def template_env() -> jinja2.Environment:
    """The Jinja environment the gateway's ``url`` and ``body`` templates are read and rendered in."""
    return jinja2.Environment(autoescape=False, undefined=jinja2.StrictUndefined)
