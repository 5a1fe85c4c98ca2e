"""Every setting of both services can be given the way deployments give it: as text in an
environment variable. (MANIFEST_FORMAT was a Literal[1, 2], which no environment value
could ever satisfy, so the documented downgrade path `MANIFEST_FORMAT=1` failed at start.)"""

from __future__ import annotations

import pytest
from pydantic_settings import BaseSettings

from analytics_api.config import ApiSettings
from analytics_api.config import get_settings as api_settings
from analytics_etl.config import EtlSettings
from analytics_etl.config import get_settings as etl_settings

REQUIRED = {"SOURCE_URL": "sqlite:///demo.db", "AUTH0_JWKS_URL": "https://tenant.example/.well-known/jwks.json",
            "AUTH0_ISSUER": "https://tenant.example/", "AUTH0_API_AUDIENCE": "https://api.example"}


def as_environment(cls: type[BaseSettings]) -> dict[str, tuple[str, str, object]]:
    """Each field with a default as env var name -> (field name, the default as text, the default)."""
    out = {}
    for name, field in cls.model_fields.items():
        default = field.get_default(call_default_factory=True)
        if default in (None, "") or isinstance(default, (dict, list, tuple, set)):
            continue  # unset by default: nothing to write as text
        text = str(default).lower() if isinstance(default, bool) else str(default)
        env = field.validation_alias if isinstance(field.validation_alias, str) else name
        out[env.upper()] = (name, text, default)
    return out


@pytest.mark.parametrize(("cls", "load"), [(EtlSettings, etl_settings), (ApiSettings, api_settings)],
                         ids=["etl", "api"])
def test_every_default_reads_back_from_its_environment_variable(cls, load, monkeypatch) -> None:  # noqa: ANN001
    fields = as_environment(cls)
    assert "MANIFEST_FORMAT" in fields or cls is ApiSettings
    for env, text in {**{env: text for env, (_, text, _) in fields.items()}, **REQUIRED}.items():
        monkeypatch.setenv(env, text)
    settings = load()
    wrong = {env: (text, getattr(settings, name)) for env, (name, text, default) in fields.items()
             if getattr(settings, name) != default}
    assert not wrong, wrong


def test_manifest_format_1_is_read_from_the_environment(monkeypatch) -> None:  # noqa: ANN001
    monkeypatch.setenv("SOURCE_URL", "sqlite:///demo.db")
    monkeypatch.setenv("MANIFEST_FORMAT", "1")
    assert etl_settings().manifest_format == 1
    monkeypatch.setenv("MANIFEST_FORMAT", "3")
    with pytest.raises(Exception, match="MANIFEST_FORMAT"):
        etl_settings()
