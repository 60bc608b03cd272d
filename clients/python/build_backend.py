"""A PEP 517 build backend with no dependencies, for this one pure-Python package.

It writes the wheel itself (a zip of kvserve/**.py plus the .dist-info files the wheel format asks
for), so `pip install ./clients/python` needs nothing from a package index: setuptools, the usual
backend, would have to be downloaded into pip's isolated build environment. The metadata (name,
version, dependencies, scripts) is read from pyproject.toml, so that file stays the one place to
change it.
"""
import base64
import hashlib
import io
import os
import re
import tarfile
import zipfile

try:
    import tomllib  # Python 3.11+
except ModuleNotFoundError:  # pragma: no cover - older Pythons
    tomllib = None

HERE = os.path.dirname(os.path.abspath(__file__))
PACKAGE = "kvserve"


def _project():
    with open(os.path.join(HERE, "pyproject.toml"), "rb") as f:
        data = f.read()
    if tomllib is not None:
        return tomllib.loads(data.decode())["project"]
    # Python < 3.11: the few keys this file uses, read with regular expressions.
    text = data.decode()
    get = lambda key: re.search(rf'^{key} = "([^"]*)"', text, re.M)[1]  # noqa: E731
    deps = re.search(r"^dependencies = \[(.*)\]", text, re.M)[1]
    scripts = dict(re.findall(r'^([\w-]+) = "([\w.:]+)"$',
                              text.split("[project.scripts]", 1)[1], re.M))
    return {"name": get("name"), "version": get("version"), "description": get("description"),
            "requires-python": get("requires-python"),
            "dependencies": re.findall(r'"([^"]+)"', deps), "scripts": scripts}


def _metadata(project):
    lines = ["Metadata-Version: 2.1", f"Name: {project['name']}",
             f"Version: {project['version']}", f"Summary: {project['description']}",
             f"Requires-Python: {project['requires-python']}"]
    lines += [f"Requires-Dist: {d}" for d in project["dependencies"]]
    readme = os.path.join(HERE, "README.md")
    body = ""
    if os.path.exists(readme):
        lines.append("Description-Content-Type: text/markdown")
        with open(readme, encoding="utf-8") as f:
            body = "\n" + f.read()
    return "\n".join(lines) + "\n" + body


def _sources():
    for root, dirs, files in os.walk(os.path.join(HERE, PACKAGE)):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        for name in sorted(files):
            if name.endswith(".py"):
                path = os.path.join(root, name)
                yield os.path.relpath(path, HERE).replace(os.sep, "/"), path


def _record_line(name, data):
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{name},sha256={digest},{len(data)}"


def _dist_info(project):
    dist = f"{project['name']}-{project['version']}.dist-info"
    files = {f"{dist}/METADATA": _metadata(project),
             f"{dist}/WHEEL": "Wheel-Version: 1.0\nGenerator: kvserve build_backend\n"
                              "Root-Is-Purelib: true\nTag: py3-none-any\n",
             f"{dist}/top_level.txt": PACKAGE + "\n"}
    scripts = project.get("scripts", {})
    if scripts:
        files[f"{dist}/entry_points.txt"] = "[console_scripts]\n" + "".join(
            f"{name} = {target}\n" for name, target in scripts.items())
    return dist, files


def get_requires_for_build_wheel(config_settings=None):
    return []


def get_requires_for_build_sdist(config_settings=None):
    return []


def prepare_metadata_for_build_wheel(metadata_directory, config_settings=None):
    dist, files = _dist_info(_project())
    for name, text in files.items():
        path = os.path.join(metadata_directory, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
    return dist


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    project = _project()
    wheel_name = f"{project['name']}-{project['version']}-py3-none-any.whl"
    dist, files = _dist_info(project)
    records = []
    with zipfile.ZipFile(os.path.join(wheel_directory, wheel_name), "w",
                         zipfile.ZIP_DEFLATED) as wheel:
        for name, path in _sources():
            with open(path, "rb") as f:
                data = f.read()
            wheel.writestr(name, data)
            records.append(_record_line(name, data))
        for name, text in files.items():
            data = text.encode("utf-8")
            wheel.writestr(name, data)
            records.append(_record_line(name, data))
        records.append(f"{dist}/RECORD,,")
        wheel.writestr(f"{dist}/RECORD", "\n".join(records) + "\n")
    return wheel_name


def build_sdist(sdist_directory, config_settings=None):
    project = _project()
    base = f"{project['name']}-{project['version']}"
    with tarfile.open(os.path.join(sdist_directory, base + ".tar.gz"), "w:gz") as sdist:
        for name in ("pyproject.toml", "build_backend.py", "README.md"):
            if os.path.exists(os.path.join(HERE, name)):
                sdist.add(os.path.join(HERE, name), f"{base}/{name}")
        for name, path in _sources():
            sdist.add(path, f"{base}/{name}")
        info = _metadata(project).encode("utf-8")
        entry = tarfile.TarInfo(f"{base}/PKG-INFO")
        entry.size = len(info)
        sdist.addfile(entry, io.BytesIO(info))
    return base + ".tar.gz"
