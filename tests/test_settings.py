"""Every setting the course reads is documented in .env.example, and nothing there is stale."""
import re

from conftest import ROOT

READ = set(re.findall(r'_(?:text|number)\("([A-Z_]+)"', (ROOT / "modules/course/settings.py").read_text()))
COMPOSE_ONLY = set(re.findall(r"\$\{([A-Z_]+):-", (ROOT / "docker-compose.yml").read_text()))
DOCUMENTED = set(re.findall(r"^([A-Z_]+)=", (ROOT / ".env.example").read_text(), re.MULTILINE))


def test_every_setting_is_in_env_example():
    assert READ - DOCUMENTED == set()


def test_env_example_lists_only_settings_something_reads():
    assert DOCUMENTED - READ - COMPOSE_ONLY == set()
