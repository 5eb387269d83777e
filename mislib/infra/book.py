"""The book: a static HTML site from the stored notebooks (``make book``; ``python -m mislib.infra.book build/book``).

Nothing is executed: the notebooks are rendered with the outputs they store. The site has, in this order, a
front page (the README's map of the notebooks and its figure gallery), the notebooks 00-06, docs/THEORY.md and a
page with every figure. It reads with the network off: MathJax is vendored from the npm registry
(``npm pack mathjax@MATHJAX_VERSION``, kept in build/vendor/), the theme is Sphinx's bundled alabaster and no
widget script is fetched. The result is ``<destination>/html/index.html``.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

from mislib.infra.paths import PROJECT_ROOT, display_path

MATHJAX_VERSION = "3.2.2"
CONF = PROJECT_ROOT / "docs" / "book" / "conf.py"
FRONT_SECTIONS = ("What the notebooks show", "Figure gallery")
_LINK = re.compile(r"(!?)\[([^\]]*)\]\(([^)\s]+)\)")


def _section(markdown: str, title: str) -> str:
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", markdown, flags=re.MULTILINE | re.DOTALL)
    if not match:
        raise ValueError(f"README.md has no section '## {title}'")
    return f"## {title}\n{match.group(1)}"


def _keep_book_links(markdown: str, available: set[str]) -> str:
    """Links to pages or images that are in the book stay; any other link becomes its text (no broken link)."""
    def replace(match):
        bang, text, target = match.groups()
        path = target.split("#")[0]
        if target.startswith(("http://", "https://", "#")) or path in available:
            return match.group(0)
        return text
    return _LINK.sub(replace, markdown)


def stage(destination: Path, root: Path = PROJECT_ROOT) -> Path:
    """Copy what the book shows into ``destination/src`` (same relative paths as in the project, so the README's
    and the notebooks' links work) and write its front page and figures page; return the source folder."""
    source = Path(destination) / "src"
    shutil.rmtree(source, ignore_errors=True)
    (source / "notebooks").mkdir(parents=True)
    (source / "docs").mkdir()
    (source / "figures").mkdir()
    notebooks = sorted((root / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    if not notebooks:
        raise FileNotFoundError(f"no notebooks NN_name.ipynb in {root / 'notebooks'}")
    for path in notebooks:
        shutil.copy2(path, source / "notebooks" / path.name)
    shutil.copy2(root / "docs" / "THEORY.md", source / "docs" / "THEORY.md")
    figures = sorted((root / "figures").glob("*.png"))
    for path in figures:
        shutil.copy2(path, source / "figures" / path.name)
    shutil.copy2(CONF, source / "conf.py")
    available = {f"notebooks/{p.name}" for p in notebooks} | {"docs/THEORY.md"} | {f"figures/{p.name}"
                                                                                  for p in figures}
    readme = (root / "README.md").read_text()
    title = readme.splitlines()[0]
    intro = readme.split("\n## ", 1)[0].split("\n", 1)[1]
    body = "\n".join(_section(readme, name) for name in FRONT_SECTIONS)
    toctree = "\n".join(["```{toctree}", ":maxdepth: 1", ":caption: Notebooks", "",
                         *[f"notebooks/{p.stem}" for p in notebooks], "```", "",
                         "```{toctree}", ":maxdepth: 1", ":caption: Reference", "", "docs/THEORY", "figures", "```"])
    (source / "index.md").write_text(f"{title}\n{_keep_book_links(intro + chr(10) + body, available)}\n{toctree}\n")
    gallery = ["# Every figure", "", "The figures of the notebooks, as published in `figures/` (PNG; PDF beside "
               "each).", ""]
    for path in figures:
        gallery += [f"## {path.stem}", "", f"![{path.stem}](figures/{path.name})", ""]
    (source / "figures.md").write_text("\n".join(gallery))
    return source


def vendor_mathjax(destination: Path, cache: Path = PROJECT_ROOT / "build" / "vendor") -> Path:
    """MathJax's es5 bundle in ``destination/_static/mathjax`` (from ``npm pack``, cached in ``cache``)."""
    cache.mkdir(parents=True, exist_ok=True)
    tarball = cache / f"mathjax-{MATHJAX_VERSION}.tgz"
    if not tarball.exists():
        if shutil.which("npm") is None:
            raise RuntimeError("make book vendors MathJax from the npm registry and needs npm (apt-get install npm)")
        subprocess.run(["npm", "pack", f"mathjax@{MATHJAX_VERSION}", "--silent"], cwd=cache, check=True,
                       stdout=subprocess.DEVNULL)
    target = Path(destination) / "_static" / "mathjax"
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    prefix = "package/es5/"
    with tarfile.open(tarball) as archive:
        members = [m for m in archive.getmembers() if m.name.startswith(prefix) and m.isfile()]
        for member in members:
            member.name = member.name[len(prefix):]
        archive.extractall(target, members=members, filter="data")
    if not (target / "tex-mml-chtml.js").exists():
        raise RuntimeError(f"{tarball.name} has no es5/tex-mml-chtml.js")
    return target


def build(destination: Path) -> Path:
    """Stage, vendor MathJax and run Sphinx; return the path of the site's index.html."""
    destination = Path(destination)
    source = stage(destination)
    vendor_mathjax(source)
    html = destination / "html"
    subprocess.run([sys.executable, "-m", "sphinx", "-b", "html", "-q", "-j", "1", str(source), str(html)],
                   check=True)
    return html / "index.html"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m mislib.infra.book DESTINATION (e.g. build/book)", file=sys.stderr)
        return 2
    index = build(Path(argv[0]))
    print(f"the book is in {display_path(index)} (open it in a browser; it needs no network)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
