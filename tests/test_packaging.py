"""Packaging consistency: pyproject.toml vs conda-recipe/meta.yaml, entry points, shipped files.

conda-build itself is not installable here, so the recipe is rendered the way conda-build
renders it (Jinja2 with StrictUndefined and the functions and variables conda-build provides,
then its line selectors, then YAML with numbers kept as strings), per platform; the result is
checked against conda-build's sections and keys, and every requirement is parsed by
``rattler.MatchSpec`` in strict mode (py-rattler: the conda ecosystem's Rust library). Each check is
shown to fail on a broken copy of the recipe (a Jinja typo, a misspelt key, a malformed spec).
"""

import importlib
import importlib.metadata
import os
import re
import sys
import tomllib

import jinja2
import pytest
import rattler
import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PIP_TO_CONDA = {"torch": "pytorch", "openmmtorch": "openmm-torch"}


def pyproject():
    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as handle:
        return tomllib.load(handle)


def meta():
    with open(os.path.join(ROOT, "conda-recipe", "meta.yaml")) as handle:
        return yaml.safe_load(handle)


def split_requirement(text):
    match = re.match(r"^\s*([A-Za-z0-9_.\-]+)\s*(.*)$", text)
    assert match, text
    return match.group(1).lower(), match.group(2).replace(" ", "")


def test_conda_run_requirements_match_pyproject():
    pip = dict(split_requirement(r) for r in pyproject()["project"]["dependencies"])
    conda = dict(split_requirement(r) for r in meta()["requirements"]["run"])
    conda.pop("python")
    mapped = {PIP_TO_CONDA.get(name, name): spec for name, spec in pip.items()}
    assert mapped == conda
    for needed in ("openmm", "openmm-torch", "pytorch", "openmmtools", "mdtraj", "numpy", "pymbar", "tqdm"):
        assert needed in conda


def test_versions_and_recipe_basics():
    project = pyproject()["project"]
    recipe = meta()
    assert recipe["package"]["version"] == project["version"] == importlib.import_module("openmm_ani").__version__
    # built per platform: setup.py compiles the C++ kernels against the host pytorch, pinned as at run time
    assert "noarch" not in recipe["build"]
    assert "OPENMM_ANI_BUILD_KERNELS=1" in recipe["build"]["script"]
    assert any("compiler('cxx')" in r for r in recipe["requirements"]["build"])
    host_torch = [r for r in recipe["requirements"]["host"] if r.startswith("pytorch")]
    run_torch = [r for r in recipe["requirements"]["run"] if r.startswith("pytorch")]
    assert host_torch == run_torch
    assert "openmm-ani --help" in recipe["test"]["commands"]
    assert "openmm_ani" in recipe["test"]["imports"]
    assert recipe["build"]["entry_points"] == [f"openmm-ani = {project['scripts']['openmm-ani']}"]
    python_pin = [r for r in recipe["requirements"]["run"] if r.startswith("python")][0]
    assert python_pin.replace(" ", "") == "python" + project["requires-python"]


def test_entry_points_resolve():
    project = pyproject()["project"]
    targets = list(project["scripts"].values()) + list(project["entry-points"]["openmmml.potentials"].values())
    for target in targets:
        module, attribute = target.split(":")
        assert callable(getattr(importlib.import_module(module), attribute)), target


def test_every_package_is_listed_and_data_shipped():
    setuptools = pyproject()["tool"]["setuptools"]
    listed = set(setuptools["packages"])
    mapping = setuptools["package-dir"]
    found = set()
    for package, folder in mapping.items():
        for directory, _, files in os.walk(os.path.join(ROOT, folder)):
            if "__init__.py" in files and "__pycache__" not in directory:
                relative = os.path.relpath(directory, os.path.join(ROOT, folder))
                name = package if relative == "." else package + "." + relative.replace(os.sep, ".")
                if not any(name.startswith(other + ".") or name == other for other in mapping if other != package
                           and other.startswith(package + ".")):
                    found.add(name)
    assert found <= listed, f"packages missing from pyproject: {sorted(found - listed)}"
    data = setuptools["package-data"]["openmm_ani"]
    assert "py.typed" in data and os.path.isfile(os.path.join(ROOT, "openmm_ani", "py.typed"))
    assert any(os.path.isfile(os.path.join(ROOT, "openmm_ani", "data", f)) for f in ("ani1ccx.npz",))


def test_extras():
    extras = pyproject()["project"]["optional-dependencies"]
    assert "pytest" in extras["test"] and any(r.startswith("openmmml") for r in extras["test"])
    assert "training" in extras


# ---------------------------------------------------------------------------------------------
# conda-build rendering of conda-recipe/meta.yaml
# ---------------------------------------------------------------------------------------------

RECIPE = os.path.join(ROOT, "conda-recipe", "meta.yaml")
#: Platforms the recipe is rendered for (conda subdirs).
SUBDIRS = ("linux-64", "linux-aarch64", "osx-64", "osx-arm64", "win-64")
#: conda-build's default C++ compiler package stem per OS ({{ compiler('cxx') }} -> "<stem>_<subdir>").
CXX_COMPILERS = {"linux": "gxx", "osx": "clangxx", "win": "vs2019"}

#: The keys conda-build accepts in each top-level section of a meta.yaml (conda_build.metadata.FIELDS,
#: without the ``outputs`` and ``app`` sections, which this single-output recipe does not use:
#: a key outside these fails the test as conda-build's "unknown key" check would).
CONDA_BUILD_FIELDS = {
    "package": {"name", "version"},
    "source": {"fn", "url", "md5", "sha1", "sha256", "path", "path_via_symlink", "git_url", "git_tag", "git_branch",
               "git_rev", "git_depth", "hg_url", "hg_tag", "svn_url", "svn_rev", "svn_ignore_externals", "folder",
               "no_hoist", "patches"},
    "build": {"number", "string", "entry_points", "osx_is_app", "disable_pip", "features", "track_features",
              "preserve_egg_dir", "no_link", "binary_relocation", "script", "noarch", "noarch_python",
              "has_prefix_files", "binary_has_prefix_files", "ignore_prefix_files", "detect_binary_files_with_prefix",
              "skip_compile_pyc", "rpaths", "rpaths_patcher", "script_env", "always_include_files", "skip",
              "msvc_compiler", "pin_depends", "include_recipe", "preferred_env", "preferred_env_executable_paths",
              "run_exports", "ignore_run_exports", "ignore_run_exports_from", "requires_features",
              "provides_features", "force_use_keys", "force_ignore_keys", "merge_build_host", "missing_dso_whitelist",
              "runpath_whitelist", "error_overdepending", "error_overlinking", "overlinking_ignore_patterns"},
    "requirements": {"build", "host", "run", "run_constrained"},
    "test": {"requires", "commands", "files", "source_files", "imports", "downstreams"},
    "about": {"home", "dev_url", "doc_url", "doc_source_url", "license_url", "license", "summary", "description",
              "license_family", "license_file", "readme", "identifiers", "tags", "keywords", "prelink_message"},
    "extra": None,  # free-form
}
REQUIRED_SECTIONS = ("package", "source", "build", "requirements", "test", "about")
#: conda-build's line selector: ``text  # [expression]`` at the end of a line.
SELECTOR = re.compile(r"^(.*?)\s*#\s*\[([^\[\]]+)\]\s*$")


class RecipeError(Exception):
    """The recipe would not render or is not a valid conda-build recipe."""


def selector_namespace(subdir: str, python: str) -> dict:
    """The names conda-build's selectors and Jinja templates see on ``subdir`` (a subset of get_selectors)."""
    platform, arch = subdir.split("-")
    major, minor = python.split(".")[:2]
    names = {"linux": platform == "linux", "osx": platform == "osx", "win": platform == "win",
             "unix": platform in ("linux", "osx"), "linux64": subdir == "linux-64", "win64": subdir == "win-64",
             "x86_64": arch == "64", "aarch64": arch == "aarch64", "arm64": arch == "arm64",
             "py": int(major + minor), "py3k": major == "3", "py2k": major == "2", "build_platform": subdir}
    return names


class _StringNumbers(yaml.SafeLoader):
    """conda-build's YAML loader: ints and floats stay strings (versions such as 1.10 keep their zero)."""


_StringNumbers.yaml_implicit_resolvers = {
    key: [(tag, regexp) for tag, regexp in resolvers if tag not in ("tag:yaml.org,2002:int", "tag:yaml.org,2002:float")]
    for key, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def render_recipe(text: str, subdir: str = "linux-64", python: str = "3.11") -> dict:
    """``meta.yaml`` text rendered as conda-build renders it for ``subdir``: Jinja, then selectors, then YAML.

    Raises
    ------
    RecipeError
        An undefined Jinja name (StrictUndefined, as conda-build's final render), a Jinja syntax
        error, a selector that does not evaluate, or YAML that does not parse.
    """
    namespace = selector_namespace(subdir, python)
    platform = subdir.split("-")[0]

    def compiler(language: str) -> str:
        stems = {"cxx": CXX_COMPILERS[platform], "c": {"linux": "gcc", "osx": "clang", "win": "vs2019"}[platform]}
        if language not in stems:
            raise RecipeError(f"compiler({language!r}): no default compiler for that language in this check")
        return f"{stems[language]}_{subdir}"

    def pin_compatible(name: str, lower_bound=None, upper_bound=None, min_pin="x.x.x.x.x.x", max_pin="x", exact=False):
        # rendered against the host environment by conda-build; here a placeholder spec that MatchSpec accepts
        return f"{name} >=0"

    def pin_subpackage(name: str, min_pin="x.x.x.x.x.x", max_pin="x", exact=False):
        return f"{name} >=0"

    # conda-build escapes backslashes in the Jinja context (get_environ(escape_backslash=True)) so that
    # paths survive double-quoted YAML strings
    python_path = "%PREFIX%\\\\python.exe" if platform == "win" else "$PREFIX/bin/python"
    context = dict(namespace, compiler=compiler, pin_compatible=pin_compatible, pin_subpackage=pin_subpackage,
                   environ={}, PYTHON=python_path)
    environment = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
    try:
        rendered = environment.from_string(text).render(**context)
    except (jinja2.TemplateError, RecipeError) as error:
        raise RecipeError(f"Jinja: {type(error).__name__}: {error}") from error
    lines = []
    for number, line in enumerate(rendered.splitlines(), 1):
        if line.lstrip().startswith("#"):
            continue
        match = SELECTOR.match(line)
        if match:
            try:
                keep = bool(eval(match.group(2), {"__builtins__": {}}, dict(namespace)))  # noqa: S307 (conda-build does the same)
            except Exception as error:
                raise RecipeError(f"line {number}: selector [{match.group(2)}]: {type(error).__name__}: {error}") from error
            if not keep:
                continue
            line = match.group(1)
        lines.append(line)
    try:
        recipe = yaml.load("\n".join(lines), Loader=_StringNumbers)  # noqa: S506 (a SafeLoader subclass)
    except yaml.YAMLError as error:
        raise RecipeError(f"YAML: {error}") from error
    if not isinstance(recipe, dict):
        raise RecipeError("the recipe is not a mapping")
    return recipe


def match_spec(text: str, where: str) -> rattler.MatchSpec:
    """``text`` parsed by rattler's MatchSpec in strict mode; the package name must be normalised (lowercase)."""
    if not isinstance(text, str):
        raise RecipeError(f"{where}: {text!r} is not a string")
    try:
        spec = rattler.MatchSpec(text, strict=True)
    except Exception as error:  # rattler raises its own InvalidMatchSpecError
        raise RecipeError(f"{where}: {text!r}: {error}") from error
    name = text.split()[0]
    if spec.name is None or spec.name.normalized != name:
        raise RecipeError(f"{where}: {text!r}: package name {name!r} is not a normalised conda name")
    return spec


def validate_recipe(recipe: dict) -> None:
    """Check a rendered recipe against conda-build's sections and keys, types and rattler's parsers.

    Raises
    ------
    RecipeError
        An unknown or missing section or key, a value of the wrong type, an invalid package name,
        version or requirement spec, an entry point that is not ``name = module:function``.
    """
    unknown = set(recipe) - set(CONDA_BUILD_FIELDS)
    if unknown:
        raise RecipeError(f"unknown top-level section(s) {sorted(unknown)}")
    for section in REQUIRED_SECTIONS:
        if not isinstance(recipe.get(section), dict):
            raise RecipeError(f"section {section!r} is missing or not a mapping")
    for section, keys in CONDA_BUILD_FIELDS.items():
        if keys is None or section not in recipe:
            continue
        wrong = set(recipe[section]) - keys
        if wrong:
            raise RecipeError(f"unknown key(s) in {section}: {sorted(wrong)}")
    package = recipe["package"]
    for key in ("name", "version"):
        if not isinstance(package.get(key), str):
            raise RecipeError(f"package/{key} is missing or not a string")
    try:
        rattler.PackageName(package["name"])
        rattler.Version(package["version"])
    except Exception as error:
        raise RecipeError(f"package: {error}") from error
    build = recipe["build"]
    if not str(build.get("number", "")).isdigit():
        raise RecipeError(f"build/number must be a non-negative integer, got {build.get('number')!r}")
    if "noarch" in build and build["noarch"] not in ("python", "generic"):
        raise RecipeError(f"build/noarch must be python or generic, got {build['noarch']!r}")
    for entry in build.get("entry_points", []):
        if not re.fullmatch(r"[A-Za-z0-9_.\-]+ = [A-Za-z_][\w.]*:[A-Za-z_]\w*", str(entry)):
            raise RecipeError(f"build/entry_points: {entry!r} is not 'name = module:function'")
    for key, value in recipe["requirements"].items():
        if not isinstance(value, list):
            raise RecipeError(f"requirements/{key} must be a list")
        for item in value:
            match_spec(item, f"requirements/{key}")
    test = recipe["test"]
    for key in ("requires",):
        for item in test.get(key, []):
            match_spec(item, f"test/{key}")
    for key in ("imports", "commands", "files", "source_files", "downstreams"):
        if key in test and not (isinstance(test[key], list) and all(isinstance(v, str) for v in test[key])):
            raise RecipeError(f"test/{key} must be a list of strings")
    for module in test.get("imports", []):
        if not re.fullmatch(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*", module):
            raise RecipeError(f"test/imports: {module!r} is not a module name")
    for key in ("license", "summary"):
        if not isinstance(recipe["about"].get(key), str):
            raise RecipeError(f"about/{key} is missing or not a string")


def recipe_text() -> str:
    with open(RECIPE) as handle:
        return handle.read()


@pytest.mark.parametrize("subdir", SUBDIRS)
def test_recipe_renders_and_validates_like_conda_build(subdir):
    recipe = render_recipe(recipe_text(), subdir)
    validate_recipe(recipe)
    platform = subdir.split("-")[0]
    assert recipe["requirements"]["build"] == [f"{CXX_COMPILERS[platform]}_{subdir}"]
    if platform == "win":
        # the build script is POSIX shell (VAR=value command); conda-build runs it with cmd.exe on Windows
        assert recipe["build"]["skip"] is True
        return
    assert "skip" not in recipe["build"]
    assert recipe["build"]["script"] == ("OPENMM_ANI_BUILD_KERNELS=1 $PREFIX/bin/python -m pip install . --no-deps "
                                         "--no-build-isolation -vv")
    assert recipe["package"] == {"name": "openmm-ani", "version": pyproject()["project"]["version"]}
    assert recipe["build"]["number"] == "0"


def test_rendered_run_requirements_match_pyproject_and_admit_the_installed_versions():
    """The rendered run requirements are pyproject's dependencies, and conda's reading of each spec
    (rattler's VersionSpec) admits the version pip installed here, python included."""
    recipe = render_recipe(recipe_text(), "linux-64")
    specs = {spec.name.normalized: spec for spec in (match_spec(r, "run") for r in recipe["requirements"]["run"])}
    pip = dict(split_requirement(r) for r in pyproject()["project"]["dependencies"])
    assert set(specs) - {"python"} == {PIP_TO_CONDA.get(name, name) for name in pip}
    installed = {PIP_TO_CONDA.get(name, name): importlib.metadata.version(name) for name in pip}
    installed["python"] = ".".join(str(v) for v in sys.version_info[:3])
    for name, spec in specs.items():
        if spec.version is not None:
            version = re.sub(r"(\.post\d+|\+.*)$", "", installed[name])  # conda versions carry no local part
            assert rattler.VersionSpec(str(spec.version)).matches(rattler.Version(version)), (name, spec, version)
    host = [str(match_spec(r, "host")) for r in recipe["requirements"]["host"]]
    assert str(specs["pytorch"]) in host  # built against the pytorch it runs with


BROKEN = [
    ("Jinja typo", "{{ PYTHON }}", "{{ PYTHN }}", "'PYTHN' is undefined"),
    ("unknown Jinja function", "{{ compiler('cxx') }}", "{{ compilers('cxx') }}", "'compilers' is undefined"),
    ("Jinja syntax", "{{ compiler('cxx') }}", "{{ compiler('cxx') }", "TemplateSyntaxError"),
    ("misspelt build key", "  entry_points:", "  entrypoints:", "unknown key(s) in build: ['entrypoints']"),
    ("misspelt section", "requirements:", "requirement:", "unknown top-level section(s) ['requirement']"),
    ("misspelt test key", "  imports:", "  import:", "unknown key(s) in test: ['import']"),
    ("malformed spec", "    - pymbar >=4,<5", "    - pymbar >=4,,<5", "requirements/run: 'pymbar >=4,,<5'"),
    ("range written with a space", "    - pytorch >=2.9,<2.10", "    - pytorch >=2.9 <2.10", "requirements/host"),
    ("capitalised name", "    - tqdm", "    - TQDM", "not a normalised conda name"),
    ("bad version", 'version: "0.1.0"', 'version: "0.1..0"', "package:"),
    ("bad selector", "  number: 0", "  number: 0  # [linuxx and ]", "selector [linuxx and ]"),
    ("bad entry point", "openmm-ani = openmm_ani.__main__:run", "openmm-ani = openmm_ani.__main__.run", "build/entry_points"),
]


@pytest.mark.parametrize("what, old, new, message", BROKEN, ids=[b[0] for b in BROKEN])
def test_broken_recipe_copies_fail(what, old, new, message):
    """Each check goes red on a copy of the recipe broken in one place."""
    text = recipe_text()
    assert text.count(old) >= 1, f"{what}: {old!r} not in the recipe"
    with pytest.raises(RecipeError) as raised:
        validate_recipe(render_recipe(text.replace(old, new, 1), "linux-64"))
    assert message in str(raised.value)
