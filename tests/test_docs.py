"""The repository documents every public interface itself: API page, scripts reference, no outside links."""
from __future__ import annotations

import importlib.util
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
spec = importlib.util.spec_from_file_location("reference", ROOT / "scripts" / "reference.py")
reference = importlib.util.module_from_spec(spec)
spec.loader.exec_module(reference)
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), ROOT / "geodata" / "README.md"]


def test_docs_scripts_page_is_generated_from_every_scripts_help():
    page = (ROOT / "docs" / "scripts.md").read_text(encoding="utf-8")
    assert page == reference.render(), "run: python scripts/reference.py > docs/scripts.md"


def test_every_staff_script_is_in_the_reference():
    commands = {p.name for p in (ROOT / "scripts").glob("*.py")
                if re.search(r"^(main = |def main\()", p.read_text(encoding="utf-8"), re.M)
                and p.name != "reference.py"}
    assert commands == set(reference.ORDER)


def test_docs_link_only_to_files_in_the_repository():
    for doc in DOCS:
        text = doc.read_text(encoding="utf-8")
        assert "shared/" not in text and "CONTRACT.md" not in text, f"{doc.name} points outside the repository"
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text):
            if target.startswith(("http://", "https://", "mailto:")):
                continue
            assert (doc.parent / target).exists(), f"{doc.name}: broken link {target}"


def test_the_readme_points_to_the_interface_docs():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "docs/api.md" in readme and "docs/scripts.md" in readme
