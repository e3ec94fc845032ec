"""How `pilah app` hands its options to the Streamlit page, which runs in a child process: `PILAH_<NAME>`
environment variables, read and checked by one typed settings object (pydantic-settings, as the API's)."""

from __future__ import annotations

from pydantic_settings import BaseSettings, SettingsConfigDict


class AppSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PILAH_", frozen=True, extra="ignore")

    model: str | None = None  # None: the bundled model
    corrections: str | None = None  # a folder: corrections that users agree to share are kept there
    region: str | None = None  # the region whose disposal advice shows first

    def as_environment(self) -> dict[str, str]:
        """The variables that give the page these settings."""
        prefix = self.model_config["env_prefix"]
        return {f"{prefix}{name.upper()}": str(value) for name, value in self if value is not None}
