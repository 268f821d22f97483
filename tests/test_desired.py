"""Desired state from files, kustomizations and Git commits, with provenance."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from driftwatch.desired import (
    DesiredState,
    DesiredStateError,
    load_git,
    load_path,
    mirror_dir,
)
from driftwatch.desired._process import redact, redact_url
from driftwatch.policy import Provenance

needs_git = pytest.mark.skipif(shutil.which("git") is None, reason="git not on PATH")
needs_kubectl = pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl not on PATH")


def policy(name: str, namespace: str | None = None, port: int = 80) -> str:
    ns = f"\n  namespace: {namespace}" if namespace else ""
    return (
        "apiVersion: networking.k8s.io/v1\n"
        "kind: NetworkPolicy\n"
        "metadata:\n"
        f"  name: {name}{ns}\n"
        "spec:\n"
        "  podSelector: {}\n"
        "  ingress:\n"
        f"  - ports: [{{port: {port}}}]\n"
    )


DEPLOYMENT = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n"
CALICO = "apiVersion: projectcalico.org/v3\nkind: NetworkPolicy\nmetadata:\n  name: calico\n"


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def sources(state: DesiredState) -> dict[tuple[str, str], Provenance | None]:
    return {key: p.source for key, p in state.policies.items()}


@pytest.fixture(autouse=True)
def isolated_git(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No user or system git config, and no repository above tmp_path."""
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", os.devnull)
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path.parent))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))


def git(repo: Path, *args: str) -> str:
    proc = subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@e", *args],
        cwd=repo,
        check=True,
        capture_output=True,
        text=True,
    )
    return proc.stdout.strip()


def commit_all(repo: Path, message: str) -> str:
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", message)
    return git(repo, "rev-parse", "HEAD")


def new_repo(path: Path) -> Path:
    path.mkdir(parents=True)
    git(path, "init", "-q", "-b", "main")
    return path


# --- load_path, outside Git ---------------------------------------------------------


def test_load_path_keeps_network_policies_with_relative_paths_and_lines(tmp_path: Path) -> None:
    root = tmp_path / "manifests"
    write(root / "prod" / "web.yaml", DEPLOYMENT + "---\n" + policy("web", "prod"))
    write(root / "prod" / "calico.yaml", CALICO)
    write(root / "default.yaml", "# header\n\n" + policy("deny-all"))
    write(root / "notes.txt", "not a manifest")

    state = load_path(root)

    assert sources(state) == {
        ("default", "deny-all"): Provenance("default.yaml", 3),
        ("prod", "web"): Provenance("prod/web.yaml", 6),
    }
    assert state.commit is None
    assert state.source == str(root)
    assert state.policies["prod", "web"].spec.ingress[0].ports[0].port == 80


def test_load_path_of_a_file_is_relative_to_its_directory(tmp_path: Path) -> None:
    path = write(tmp_path / "one" / "web.yaml", policy("web", "prod", port=8080))
    state = load_path(path, default_namespace="ignored")
    assert sources(state) == {("prod", "web"): Provenance("web.yaml", 1)}


def test_default_namespace_applies_to_policies_without_one(tmp_path: Path) -> None:
    path = write(tmp_path / "web.yaml", policy("web"))
    assert list(load_path(path, default_namespace="team-a").policies) == [("team-a", "web")]


def test_invalid_field_names_file_line_policy_and_field(tmp_path: Path) -> None:
    write(tmp_path / "ok.yaml", policy("ok"))
    write(tmp_path / "bad.yaml", DEPLOYMENT + "---\n" + policy("web", "prod", port=70000))
    with pytest.raises(DesiredStateError) as caught:
        load_path(tmp_path)
    assert str(caught.value) == (
        "bad.yaml:6: NetworkPolicy prod/web: "
        "spec.ingress[0].ports[0].port: 70000 is outside 1-65535"
    )


def test_policy_without_a_name_names_file_and_line(tmp_path: Path) -> None:
    write(tmp_path / "a.yaml", "---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\n")
    with pytest.raises(DesiredStateError) as caught:
        load_path(tmp_path)
    assert (
        str(caught.value) == "a.yaml:2: NetworkPolicy default/<unnamed>: metadata.name: is required"
    )


def test_duplicate_policy_across_files_names_both_places(tmp_path: Path) -> None:
    write(tmp_path / "a.yaml", policy("web", "prod"))
    write(tmp_path / "b" / "c.yaml", DEPLOYMENT + "---\n" + policy("web", "prod", port=81))
    with pytest.raises(DesiredStateError) as caught:
        load_path(tmp_path)
    assert str(caught.value) == "duplicate NetworkPolicy prod/web: a.yaml:1 and b/c.yaml:6"


def test_manifest_errors_name_file_and_line(tmp_path: Path) -> None:
    write(tmp_path / "x" / "dup.yaml", policy("web") + "kind: NetworkPolicy\n")
    with pytest.raises(DesiredStateError) as caught:
        load_path(tmp_path)
    assert str(caught.value) == "x/dup.yaml:9: duplicate key 'kind' (first at line 2)"


def test_missing_path_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(DesiredStateError, match="no such file or directory"):
        load_path(tmp_path / "nope")


# --- load_path, inside a Git work tree --------------------------------------------------


@needs_git
def test_load_path_in_work_tree_uses_repo_paths_and_head_for_unmodified_files(
    tmp_path: Path,
) -> None:
    repo = new_repo(tmp_path / "repo")
    write(repo / "clusters" / "prod" / "web.yaml", policy("web", "prod"))
    write(repo / "clusters" / "prod" / "db.yaml", policy("db", "prod"))
    head = commit_all(repo, "policies")
    write(repo / "clusters" / "prod" / "db.yaml", policy("db", "prod", port=5432))  # modified
    write(repo / "clusters" / "prod" / "new.yaml", policy("new", "prod"))  # untracked

    state = load_path(repo / "clusters" / "prod")

    assert state.commit == head
    assert sources(state) == {
        ("prod", "web"): Provenance("clusters/prod/web.yaml", 1, head),
        ("prod", "db"): Provenance("clusters/prod/db.yaml", 1, None),
        ("prod", "new"): Provenance("clusters/prod/new.yaml", 1, None),
    }
    assert state.policies["prod", "db"].spec.ingress[0].ports[0].port == 5432


@needs_git
def test_load_path_in_a_repository_without_commits(tmp_path: Path) -> None:
    repo = new_repo(tmp_path / "repo")
    write(repo / "web.yaml", policy("web"))
    state = load_path(repo)
    assert state.commit is None
    assert sources(state) == {("default", "web"): Provenance("web.yaml", 1, None)}


@needs_git
def test_load_path_without_git_on_path_falls_back_to_plain_paths(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = new_repo(tmp_path / "repo")
    write(repo / "clusters" / "web.yaml", policy("web"))
    commit_all(repo, "one")
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    state = load_path(repo / "clusters")
    assert state.commit is None
    assert sources(state) == {("default", "web"): Provenance("web.yaml", 1, None)}


# --- kustomize ------------------------------------------------------------------------


def kustomize_app(root: Path) -> None:
    write(root / "base" / "web.yaml", policy("web"))
    write(root / "base" / "kustomization.yaml", "resources:\n- web.yaml\n")
    write(
        root / "overlays" / "prod" / "kustomization.yaml",
        "namespace: prod\nnamePrefix: prod-\nresources:\n- ../../base\n",
    )
    # Not listed in the kustomization: must not be read.
    write(root / "overlays" / "prod" / "stray.yaml", policy("stray", "prod"))


@needs_kubectl
def test_kustomization_is_rendered_with_kubectl_instead_of_read(tmp_path: Path) -> None:
    root = tmp_path / "deploy"
    kustomize_app(root)
    write(root / "plain" / "db.yaml", policy("db", "prod"))

    state = load_path(root / "overlays")

    assert sources(state) == {("prod", "prod-web"): Provenance("prod/kustomization.yaml", 1)}
    assert load_path(root / "plain").policies.keys() == {("prod", "db")}


@needs_git
@needs_kubectl
def test_kustomization_in_work_tree_has_head_only_while_the_tree_is_clean(tmp_path: Path) -> None:
    repo = new_repo(tmp_path / "repo")
    kustomize_app(repo)
    head = commit_all(repo, "app")
    clean = load_path(repo / "overlays")
    assert sources(clean) == {
        ("prod", "prod-web"): Provenance("overlays/prod/kustomization.yaml", 1, head)
    }
    write(repo / "base" / "web.yaml", policy("web", port=81))  # what the overlay renders
    dirty = load_path(repo / "overlays")
    assert sources(dirty) == {
        ("prod", "prod-web"): Provenance("overlays/prod/kustomization.yaml", 1, None)
    }
    assert dirty.policies["prod", "prod-web"].spec.ingress[0].ports[0].port == 81


@needs_kubectl
def test_kustomization_file_given_directly_is_rendered(tmp_path: Path) -> None:
    kustomize_app(tmp_path)
    state = load_path(tmp_path / "overlays" / "prod" / "kustomization.yaml")
    assert list(state.policies) == [("prod", "prod-web")]


def test_kustomization_without_kubectl_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    kustomize_app(tmp_path / "deploy")
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    with pytest.raises(DesiredStateError) as caught:
        load_path(tmp_path / "deploy" / "overlays")
    assert str(caught.value) == (
        "prod/kustomization.yaml: rendering a kustomization needs kubectl on PATH"
    )


@needs_kubectl
def test_kubectl_failure_reports_its_first_error_line(tmp_path: Path) -> None:
    write(tmp_path / "app" / "kustomization.yaml", "resources:\n- missing.yaml\n")
    with pytest.raises(DesiredStateError) as caught:
        load_path(tmp_path)
    message = str(caught.value)
    assert message.startswith("app/kustomization.yaml: kubectl kustomize failed: ")
    assert "accumulating resources" in message
    assert "missing.yaml" in message
    assert "run.go" not in message  # no klog header
    assert "\n" not in message


# --- load_git --------------------------------------------------------------------------


@pytest.fixture
def upstream(tmp_path: Path) -> dict[str, str]:
    """A repository with two commits (the first tagged v1) touching clusters/prod."""
    repo = new_repo(tmp_path / "upstream")
    write(repo / "README.md", "docs\n")
    write(repo / "clusters" / "prod" / "web.yaml", policy("web", "prod"))
    write(repo / "clusters" / "staging" / "web.yaml", policy("web", "staging"))
    first = commit_all(repo, "first")
    git(repo, "tag", "v1")
    write(
        repo / "clusters" / "prod" / "web.yaml",
        DEPLOYMENT + "---\n" + policy("web", "prod", port=8080),
    )
    write(repo / "clusters" / "prod" / "db" / "db.yaml", policy("db", "prod"))
    second = commit_all(repo, "second")
    return {"url": str(repo), "first": first, "second": second}


@needs_git
def test_load_git_at_a_tag_reports_that_commit_and_repo_paths(
    upstream: dict[str, str], tmp_path: Path
) -> None:
    url = upstream["url"]
    state = load_git(url, ref="v1", subpath="clusters/prod", cache_dir=tmp_path / "cache")
    first = upstream["first"]
    assert state.commit == first
    assert state.source == f"{url}@v1:clusters/prod"
    assert sources(state) == {
        ("prod", "web"): Provenance("clusters/prod/web.yaml", 1, first, url),
    }
    assert state.policies["prod", "web"].spec.ingress[0].ports[0].port == 80


@needs_git
def test_load_git_defaults_to_the_remote_head_and_sees_new_commits(
    upstream: dict[str, str], tmp_path: Path
) -> None:
    url, second = upstream["url"], upstream["second"]
    cache = tmp_path / "cache"
    state = load_git(url, subpath="clusters/prod/", cache_dir=cache)
    assert state.commit == second
    assert sources(state) == {
        ("prod", "db"): Provenance("clusters/prod/db/db.yaml", 1, second, url),
        ("prod", "web"): Provenance("clusters/prod/web.yaml", 6, second, url),
    }
    assert state.policies["prod", "web"].spec.ingress[0].ports[0].port == 8080

    repo = Path(url)
    (repo / "clusters" / "prod" / "db" / "db.yaml").unlink()
    third = commit_all(repo, "third")
    again = load_git(url, ref="main", subpath="clusters/prod", cache_dir=cache)
    assert again.commit == third
    assert list(again.policies) == [("prod", "web")]


@needs_git
def test_load_git_reads_commits_and_never_touches_the_work_tree(
    upstream: dict[str, str], tmp_path: Path
) -> None:
    repo = Path(upstream["url"])
    web = repo / "clusters" / "staging" / "web.yaml"
    web.write_text(policy("web", "staging", port=9999))  # uncommitted change
    status_before = git(repo, "status", "--porcelain")

    state = load_git(str(repo), cache_dir=tmp_path / "cache")

    assert state.policies["staging", "web"].spec.ingress[0].ports[0].port == 80
    assert state.policies.keys() == {("prod", "web"), ("prod", "db"), ("staging", "web")}
    assert git(repo, "status", "--porcelain") == status_before
    assert web.read_text() == policy("web", "staging", port=9999)
    assert (mirror_dir(str(repo), tmp_path / "cache") / "objects").is_dir()


@needs_git
def test_load_git_accepts_a_relative_local_path_and_uses_the_xdg_cache(
    upstream: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    state = load_git("upstream", ref=upstream["first"])
    assert state.commit == upstream["first"]
    assert {p.source.repo for p in state.policies.values() if p.source} == {upstream["url"]}
    mirrors = list((tmp_path / "xdg-cache" / "driftwatch" / "git").iterdir())
    assert mirror_dir(upstream["url"], tmp_path / "xdg-cache" / "driftwatch" / "git") in mirrors


@needs_git
@needs_kubectl
def test_load_git_renders_a_kustomization_that_refers_outside_the_subpath(
    tmp_path: Path,
) -> None:
    repo = new_repo(tmp_path / "gitops")
    kustomize_app(repo)
    sha = commit_all(repo, "kustomize")
    state = load_git(str(repo), subpath="overlays/prod", cache_dir=tmp_path / "cache")
    assert sources(state) == {
        ("prod", "prod-web"): Provenance("overlays/prod/kustomization.yaml", 1, sha, str(repo)),
    }


@needs_git
@pytest.mark.parametrize(
    ("ref", "subpath", "expected"),
    [
        ("nope", None, "@nope: no branch, tag or commit 'nope' in the repository"),
        ("v1", "clusters/dev", "@v1: no 'clusters/dev' in commit "),
        (None, "../etc", "@HEAD: subpath '../etc' must be a relative path inside the repository"),
    ],
)
def test_load_git_errors_name_repository_and_ref(
    upstream: dict[str, str], tmp_path: Path, ref: str | None, subpath: str | None, expected: str
) -> None:
    with pytest.raises(DesiredStateError) as caught:
        load_git(upstream["url"], ref=ref, subpath=subpath, cache_dir=tmp_path / "cache")
    assert str(caught.value).startswith(upstream["url"] + expected)


@needs_git
def test_load_git_policy_error_names_repository_file_and_line(
    upstream: dict[str, str], tmp_path: Path
) -> None:
    repo = Path(upstream["url"])
    write(repo / "clusters" / "prod" / "bad.yaml", "\n" + policy("Bad_Name", "prod"))
    commit_all(repo, "bad")
    with pytest.raises(DesiredStateError) as caught:
        load_git(str(repo), subpath="clusters/prod", cache_dir=tmp_path / "cache")
    assert str(caught.value).startswith(
        f"{repo}@HEAD: clusters/prod/bad.yaml:2: NetworkPolicy prod/Bad_Name: metadata.name: "
    )


@needs_git
def test_clone_failure_names_the_repository_and_never_leaks_a_token(tmp_path: Path) -> None:
    url = "https://robot:s3cr3t-token@127.0.0.1:9/org/policies.git?private_token=s3cr3t-token"
    cache = tmp_path / "cache"
    with pytest.raises(DesiredStateError) as caught:
        load_git(url, ref="main", cache_dir=cache)
    message = str(caught.value)
    assert message.startswith(
        "https://127.0.0.1:9/org/policies.git@main: git fetch failed: fatal: unable to access "
    )
    assert "s3cr3t" not in message
    assert "\n" not in message
    for path in cache.rglob("*"):
        if path.is_file():
            assert b"s3cr3t" not in path.read_bytes(), path


def test_load_git_without_git_on_path_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    with pytest.raises(DesiredStateError) as caught:
        load_git("https://example.invalid/r.git", ref="v2", cache_dir=tmp_path / "cache")
    assert str(caught.value) == (
        "https://example.invalid/r.git@v2: reading a Git repository needs git on PATH"
    )


def test_missing_repository_is_a_one_line_error(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-repo"
    with pytest.raises(DesiredStateError) as caught:
        load_git(str(missing), cache_dir=tmp_path / "cache")
    message = str(caught.value)
    assert message.startswith(f"{missing}@HEAD: ")
    assert "\n" not in message


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://user:tok@github.com/o/r.git", "https://github.com/o/r.git"),
        ("https://tok@github.com/o/r.git?x=tok#frag", "https://github.com/o/r.git"),
        ("ssh://git@github.com/o/r.git", "ssh://github.com/o/r.git"),
        ("git@github.com:o/r.git", "git@github.com:o/r.git"),
        ("/srv/git/r.git", "/srv/git/r.git"),
        ("https://u:p@[::1/r.git", "https://<invalid URL>"),
    ],
)
def test_redact_url_removes_credentials(url: str, expected: str) -> None:
    assert redact_url(url) == expected


def test_redact_scrubs_urls_inside_messages() -> None:
    url = "https://u:p4ss@h.example/r.git"
    line = f"fatal: unable to access '{url}/': and https://x:y@other.example/?t=p4ss"
    assert redact(line, url) == (
        "fatal: unable to access 'https://h.example/r.git/': and https://other.example/"
    )


def test_unusable_cache_directory_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(DesiredStateError, match=r"cannot use the cache directory .*Not a dir"):
        load_git(str(tmp_path), cache_dir=blocker / "cache")
