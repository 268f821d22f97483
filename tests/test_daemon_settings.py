"""The daemon's configuration: cluster, desired, link_template, log, ${ENV}, *_file secrets."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic import ConfigDict, Field, SecretStr, ValidationError

from driftwatch.policy import Provenance
from driftwatch.settings import (
    ClusterSettings,
    Settings,
    SettingsError,
    check_link_template,
    expand_environment,
    format_duration,
    load_settings,
    parse_duration,
    parse_settings,
    render_link,
    require_desired,
    secret_values,
)
from driftwatch.values.secrets import SecretFileModel

EXAMPLE = Path(__file__).parent.parent / "config" / "examples" / "driftwatch.yaml"
BASE = Path("/etc/driftwatch")


def parse(text: str, env: dict[str, str] | None = None) -> Settings:
    return parse_settings(text, "c.yaml", base_dir=BASE, environ=env or {})


def error_of(text: str, env: dict[str, str] | None = None) -> str:
    with pytest.raises(SettingsError) as info:
        parse(text, env)
    return str(info.value)


# --- the whole file ---------------------------------------------------------------------

FULL = """\
cluster:
  name: prod-eu-1
  kubeconfig: ~/.kube/prod
  context: admin@prod
  namespaces: [shop, payments]
  token: s3cr3t-token
desired:
  git:
    url: https://github.com/acme/platform.git
    ref: main
    path: clusters/prod
    poll_interval: 1h30m
default_namespace: apps
link_template: "https://github.com/acme/platform/blob/{commit}/{path}#L{line}"
ignore: {namespaces: ["kube-*"]}
rules: {disabled: [cosmetic]}
log: {level: debug, format: json}
"""


def test_every_section_is_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", "/home/ops")
    s = parse(FULL)
    assert s.cluster.name == "prod-eu-1"
    assert s.cluster.kubeconfig == Path("/home/ops/.kube/prod")
    assert s.cluster.context == "admin@prod"
    assert s.cluster.namespaces == ["shop", "payments"]
    assert s.cluster.token is not None
    assert s.cluster.token.get_secret_value() == "s3cr3t-token"
    git = require_desired(s).git
    assert git is not None
    assert (git.url, git.ref, git.path, git.poll_interval) == (
        "https://github.com/acme/platform.git",
        "main",
        "clusters/prod",
        5400.0,
    )
    assert s.default_namespace == "apps"
    assert s.link_template is not None
    assert (s.log.level, s.log.format) == ("debug", "json")
    assert s.ignore.namespaces == ["kube-*"]
    assert s.rules.disabled == ["cosmetic"]


def test_defaults_need_nothing_new() -> None:
    s = parse("")
    assert s == Settings()
    assert s.cluster == ClusterSettings()
    assert (s.cluster.name, s.cluster.kubeconfig, s.cluster.context) == ("default", None, None)
    assert (s.cluster.namespaces, s.cluster.token) == ([], None)
    assert s.desired is None
    assert s.link_template is None
    assert (s.log.level, s.log.format) == ("info", "auto")
    assert s.secret_values() == frozenset()


def test_git_defaults() -> None:
    git = require_desired(parse("desired:\n  git: {url: git@github.com:acme/platform.git}\n")).git
    assert git is not None
    assert (git.url, git.ref, git.path, git.poll_interval) == (
        "git@github.com:acme/platform.git",
        None,
        None,
        60.0,
    )


def test_log_level_is_case_insensitive() -> None:
    assert parse("log: {level: WARNING}\n").log.level == "warning"


def test_run_needs_desired_check_does_not() -> None:
    with pytest.raises(SettingsError) as info:
        require_desired(parse("cluster: {name: x}\n"), "c.yaml")
    assert str(info.value).startswith("c.yaml: desired: required for `driftwatch run`")
    with pytest.raises(SettingsError, match=r"^desired: required for `driftwatch run`"):
        require_desired(Settings())
    assert require_desired(parse("desired: {path: m}\n")).path == BASE / "m"


# --- invalid values: file:line: field: message ------------------------------------------


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        ("cluster:\n  nmae: x\n", "c.yaml:2: cluster.nmae: unknown field"),
        ("cluster:\n  name: ''\n", "c.yaml:2: cluster.name: String should have at least 1"),
        (
            "cluster:\n  namespaces:\n    - shop\n    - Shop_1\n",
            "c.yaml:4: cluster.namespaces[1]: 'Shop_1' is not a namespace name",
        ),
        ("cluster: {context: [a]}\n", "c.yaml:1: cluster.context: Input should be a valid string"),
        ("cluster:\n  token: [a]\n", "c.yaml:2: cluster.token: Input should be a valid string"),
        ("cluster:\n  name_file: /x\n", "c.yaml:2: cluster.name_file: unknown field"),
        ("desired: {}\n", "c.yaml:1: desired: give path (a manifest directory) or git"),
        (
            "desired:\n  path: m\n  git:\n    url: u\n",
            "c.yaml:4: desired.git: give either path or git, not both",
        ),
        ("desired:\n  git: {ref: main}\n", "c.yaml:2: desired.git.url: Field required"),
        ("desired:\n  git: {url: ''}\n", "c.yaml:2: desired.git.url: String should have at least"),
        (
            "desired:\n  git:\n    url: u\n    poll_interval: 5x\n",
            "c.yaml:4: desired.git.poll_interval: '5x' is not a duration: write 30s, 5m or 4h",
        ),
        (
            "desired:\n  git:\n    url: u\n    poll_interval: 500ms\n",
            "c.yaml:4: desired.git.poll_interval: must be at least 1s",
        ),
        (
            "desired:\n  git:\n    url: u\n    poll_interval: -5\n",
            "c.yaml:4: desired.git.poll_interval: -5 is negative",
        ),
        (
            "desired:\n  git:\n    url: u\n    path: ../other\n",
            "c.yaml:4: desired.git.path: '../other' must be a relative path inside the repository",
        ),
        (
            "desired:\n  git:\n    url: u\n    path: /abs\n",
            "c.yaml:4: desired.git.path: '/abs' must be a relative path",
        ),
        ("desired:\n  url: u\n", "c.yaml:2: desired.url: unknown field"),
        (
            "link_template: 'https://x/{commit}/{branch}'\n",
            "c.yaml:1: link_template: unknown placeholder {branch}: "
            "use {commit}, {path}, {line} or {repo}",
        ),
        ("link_template: 'x/{}'\n", "c.yaml:1: link_template: positional placeholder {}"),
        ("link_template: 'x/{0}'\n", "c.yaml:1: link_template: positional placeholder {0}"),
        (
            "link_template: 'x/{path.name}'\n",
            "c.yaml:1: link_template: unknown placeholder {path.name}",
        ),
        ("link_template: 'x/{commit'\n", "c.yaml:1: link_template: invalid link template"),
        ("link_template: 'x/{line:q}'\n", "c.yaml:1: link_template: invalid link template"),
        (
            "log:\n  level: trace\n",
            "c.yaml:2: log.level: Input should be 'debug', 'info', 'warning' or 'error'",
        ),
        (
            "log:\n  format: xml\n",
            "c.yaml:2: log.format: Input should be 'auto', 'json' or 'console'",
        ),
        ("log: {colour: true}\n", "c.yaml:1: log.colour: unknown field"),
    ],
)
def test_invalid_value_names_file_line_and_field(config: str, expected: str) -> None:
    message = error_of(config)
    assert message.startswith(expected), message
    assert len(message.splitlines()) == 1, message


def test_problems_are_reported_together_in_line_order() -> None:
    config = (
        "log: {level: loud}\n"
        "cluster:\n"
        "  namespaces: [BAD]\n"
        "  token_file: /nonexistent/token\n"
        "desired:\n"
        "  git: {url: '${REPO}', poll_interval: 0s}\n"
    )
    lines = error_of(config).splitlines()
    assert [re.sub(r": .*", "", line, count=1) for line in lines] == [
        "c.yaml:1",
        "c.yaml:3",
        "c.yaml:4",
        "c.yaml:6",
        "c.yaml:6",
    ]
    assert [line.split(": ")[1] for line in lines] == [
        "log.level",
        "cluster.namespaces[0]",
        "cluster.token_file",
        "desired.git.url",
        "desired.git.poll_interval",
    ]


# --- ${ENV} substitution ----------------------------------------------------------------


def test_environment_values_are_substituted() -> None:
    config = (
        "cluster:\n"
        "  name: ${CLUSTER}\n"
        "  namespaces: ['${NS1}', 'ns-${NS2:-two}']\n"
        "desired:\n"
        "  git:\n"
        "    url: https://${HOST}/acme/platform.git\n"
        "    ref: ${REF:-main}\n"
        "    poll_interval: ${POLL:-2m}\n"
        "link_template: 'https://${HOST}/{commit}/{path}?$$ref=1'\n"
        "log: {level: '${LEVEL}'}\n"
    )
    env = {"CLUSTER": "prod", "NS1": "shop", "HOST": "git.example", "REF": "", "LEVEL": "ERROR"}
    s = parse(config, env)
    assert s.cluster.name == "prod"
    assert s.cluster.namespaces == ["shop", "ns-two"]
    git = require_desired(s).git
    assert git is not None
    assert git.url == "https://git.example/acme/platform.git"
    assert git.ref == "main"  # empty counts as unset for :-, as in the shell
    assert git.poll_interval == 120.0
    assert s.link_template == "https://git.example/{commit}/{path}?$ref=1"
    assert s.log.level == "error"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("plain", "plain"),
        ("${A}", "a"),
        ("x${A}y${B}z", "xaybz"),
        ("${UNSET:-fallback}", "fallback"),
        ("${A:-fallback}", "a"),
        ("${EMPTY:-fallback}", "fallback"),
        ("${EMPTY}", ""),
        ("${UNSET:-}", ""),
        ("$$", "$"),
        ("$${A}", "${A}"),
        ("$$$${A}", "$${A}"),
        ("$$${A}", "$a"),
        ("cost: $5", "cost: $5"),
        ("^a.*$", "^a.*$"),
        ("${A:-x:-y}", "a"),
    ],
)
def test_expand_environment(text: str, expected: str) -> None:
    assert expand_environment(text, {"A": "a", "B": "b", "EMPTY": ""}) == expected


@pytest.mark.parametrize("text", ["${", "${A", "${1A}", "${A-b}", "${}", "${A B}"])
def test_malformed_reference_is_an_error(text: str) -> None:
    with pytest.raises(ValueError, match=r"invalid reference .*: write \$\{VAR\}"):
        expand_environment(text, {"A": "a"})


def test_unset_variable_names_its_line_and_field() -> None:
    config = "default_namespace: x\ncluster:\n  namespaces:\n    - a\n    - ${TEAM_NS}\n"
    message = error_of(config)
    assert message == (
        "c.yaml:5: cluster.namespaces[1]: environment variable TEAM_NS is not set"
    ), message


def test_every_unset_variable_is_reported_without_follow_up_errors() -> None:
    config = "desired:\n  git:\n    url: ${URL}\n    poll_interval: ${POLL}\n"
    assert error_of(config).splitlines() == [
        "c.yaml:3: desired.git.url: environment variable URL is not set",
        "c.yaml:4: desired.git.poll_interval: environment variable POLL is not set",
    ]


def test_keys_and_non_strings_are_not_substituted() -> None:
    # A key is never substituted: ${X} stays an (unknown) field name.
    assert (
        error_of("cluster:\n  ${X}: 1\n", {"X": "name"}) == "c.yaml:2: cluster.${X}: unknown field"
    )
    s = parse(
        "rules:\n  severity: {cosmetic: '${LEVEL}'}\n  sensitive_ports: [8443]\n", {"LEVEL": "high"}
    )
    assert s.rules.severity == {"cosmetic": "high"}
    assert s.rules.sensitive_ports == [8443]


def test_load_settings_reads_the_process_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DW_TEST_CLUSTER", "from-env")
    path = tmp_path / "c.yaml"
    path.write_text("cluster: {name: '${DW_TEST_CLUSTER}'}\n")
    assert load_settings(path).cluster.name == "from-env"
    monkeypatch.delenv("DW_TEST_CLUSTER")
    with pytest.raises(SettingsError, match=r"c\.yaml:1: cluster\.name: environment variable"):
        load_settings(path)


# --- secrets and *_file -----------------------------------------------------------------


def test_token_file_is_read_and_stripped(tmp_path: Path) -> None:
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "token").write_text("file-token-123\n")
    config = tmp_path / "driftwatch.yaml"
    config.write_text("cluster:\n  token_file: secrets/token\n")  # relative to the config
    s = load_settings(config)
    assert s.cluster.token == SecretStr("file-token-123")
    assert s.secret_values() == {"file-token-123"}


def test_token_file_path_may_come_from_the_environment(tmp_path: Path) -> None:
    (tmp_path / "t").write_text("abc\r\n")
    s = parse(
        "cluster:\n  token_file: ${CREDENTIALS_DIRECTORY}/t\n",
        {"CREDENTIALS_DIRECTORY": str(tmp_path)},
    )
    assert s.cluster.token == SecretStr("abc")


def test_token_and_token_file_together_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "t").write_text("x")
    message = error_of(f"cluster:\n  token: inline-secret\n  token_file: {tmp_path}/t\n")
    assert message == "c.yaml:3: cluster.token_file: give either token or token_file, not both"


def test_unreadable_token_file_is_an_error(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    message = error_of(f"cluster:\n  name: x\n  token_file: {missing}\n")
    assert (
        message == f"c.yaml:3: cluster.token_file: cannot read {missing}: No such file or directory"
    )
    assert error_of(f"cluster:\n  token_file: {tmp_path}\n").startswith(
        f"c.yaml:2: cluster.token_file: cannot read {tmp_path}: Is a directory"
    )


def test_empty_or_odd_token_file_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "empty").write_text("\n")
    assert error_of(f"cluster:\n  token_file: {tmp_path}/empty\n") == (
        f"c.yaml:2: cluster.token_file: {tmp_path}/empty is empty"
    )
    (tmp_path / "binary").write_bytes(b"\xff\xfe")
    assert error_of(f"cluster:\n  token_file: {tmp_path}/binary\n").endswith("not UTF-8 text")
    assert error_of("cluster:\n  token_file: [a]\n").startswith(
        "c.yaml:2: cluster.token_file: must be the path of a file"
    )


def test_secrets_never_show_in_repr_str_or_errors(tmp_path: Path) -> None:
    (tmp_path / "t").write_text("file-secret")
    s = parse(
        "cluster: {token: inline-secret}\n"
        "desired: {git: {url: 'https://bot:url-secret@git.example/x.git'}}\n"
    )
    for text in (repr(s), str(s), repr(s.cluster), s.model_dump_json()):
        assert "inline-secret" not in text
    assert s.secret_values() == {"inline-secret", "url-secret"}
    message = error_of(f"cluster:\n  token: inline-secret\n  token_file: {tmp_path}/t\n  x: 1\n")
    assert "inline-secret" not in message
    assert "file-secret" not in message
    with pytest.raises(SettingsError) as info:
        parse(f"cluster:\n  token: inline-secret\n  token_file: {tmp_path}/t\n")
    assert "inline-secret" not in str(info.value.__cause__)


def test_file_secrets_are_generic_and_found_anywhere(tmp_path: Path) -> None:
    """Any SecretStr field of a settings model takes <field>_file; secret_values finds all."""

    class Receiver(SecretFileModel):
        model_config = ConfigDict(extra="forbid", frozen=True)
        name: str
        routing_key: SecretStr

    class Config(SecretFileModel):
        model_config = ConfigDict(extra="forbid", frozen=True)
        receivers: list[Receiver]
        by_name: dict[str, Receiver] = Field(default_factory=dict)

    (tmp_path / "k").write_text("key-from-file\n")
    c = Config.model_validate(
        {
            "receivers": [
                {"name": "a", "routing_key": "inline-key"},
                {"name": "b", "routing_key_file": str(tmp_path / "k")},
            ],
            "by_name": {"c": {"name": "c", "routing_key": "dict-key"}},
        }
    )
    assert c.receivers[1].routing_key.get_secret_value() == "key-from-file"
    assert secret_values(c) == {"inline-key", "key-from-file", "dict-key"}
    with pytest.raises(ValidationError) as info:
        Config.model_validate({"receivers": [{"name": "b", "routing_key_file": "/nope"}]})
    assert [(e["loc"], e["msg"]) for e in info.value.errors()] == [
        (("receivers", 0, "routing_key_file"), "cannot read /nope: No such file or directory")
    ]


# --- paths ------------------------------------------------------------------------------


def test_relative_desired_path_is_resolved_against_the_config_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "etc").mkdir()
    config = tmp_path / "etc" / "driftwatch.yaml"
    config.write_text("desired:\n  path: ./manifests\n")
    monkeypatch.chdir(tmp_path)
    assert require_desired(load_settings(Path("etc/driftwatch.yaml"))).path == (
        tmp_path / "etc" / "manifests"
    )
    config.write_text("desired:\n  path: ../policies\n")
    assert require_desired(load_settings(config)).path == tmp_path / "etc" / ".." / "policies"
    config.write_text("desired:\n  path: /srv/policies\n")
    assert require_desired(load_settings(config)).path == Path("/srv/policies")


def test_home_is_expanded_and_local_git_paths_resolved(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", "/home/ops")
    assert require_desired(parse("desired: {path: ~/policies}\n")).path == Path(
        "/home/ops/policies"
    )
    assert parse("cluster: {kubeconfig: kube/config}\n").cluster.kubeconfig == (
        BASE / "kube" / "config"
    )
    for url, expected in [
        ("../platform", str(BASE / ".." / "platform")),
        ("/srv/git/platform.git", "/srv/git/platform.git"),
        ("https://github.com/acme/platform.git", "https://github.com/acme/platform.git"),
        ("git@github.com:acme/platform.git", "git@github.com:acme/platform.git"),
        ("file:///srv/git/platform.git", "file:///srv/git/platform.git"),
    ]:
        git = require_desired(parse(f"desired: {{git: {{url: '{url}'}}}}\n")).git
        assert git is not None
        assert git.url == expected


def test_parse_without_base_dir_resolves_against_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    s = parse_settings("desired: {path: m}\n", "c.yaml", environ={})
    assert require_desired(s).path == tmp_path / "m"


# --- durations --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("60s", 60.0),
        ("5m", 300.0),
        ("1h30m", 5400.0),
        ("250ms", 0.25),
        ("4h", 14400.0),
        ("1d", 86400.0),
        ("1d2h3m4s5ms", 93784.005),
        ("1.5h", 5400.0),
        (".5s", 0.5),
        (" 30s ", 30.0),
        ("0s", 0.0),
        ("90", 90.0),
        ("2.5", 2.5),
        (90, 90.0),
        (0.5, 0.5),
    ],
)
def test_durations(value: str | float, seconds: float) -> None:
    assert parse_duration(value) == pytest.approx(seconds)


@pytest.mark.parametrize(
    "value",
    ["5x", "", "s", "m5", "1h 30m", "30m1h", "1m1m", "5 m", "1e3s", "5S", "-5s", "1h-5m", "inf"],
)
def test_bad_durations(value: str) -> None:
    with pytest.raises(ValueError, match=re.escape(f"{value!r} is not a duration: write 30s")):
        parse_duration(value)


@pytest.mark.parametrize("value", [True, None, [5], float("nan"), float("inf")])
def test_non_durations(value: object) -> None:
    with pytest.raises(ValueError, match="is not a duration"):
        parse_duration(value)


def test_negative_number_of_seconds() -> None:
    with pytest.raises(ValueError, match="-1 is negative"):
        parse_duration(-1)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "0s"), (0.25, "250ms"), (60, "1m"), (5400, "1h30m"), (86400 + 1.5, "1d1s500ms")],
)
def test_format_duration_round_trips(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text
    assert parse_duration(text) == pytest.approx(seconds)


# --- link_template ----------------------------------------------------------------------

TEMPLATE = "https://github.com/acme/platform/blob/{commit}/{path}#L{line}"
SHA = "0123456789abcdef0123456789abcdef01234567"


def test_link_template_accepts_every_placeholder_and_format_specs() -> None:
    for template in (TEMPLATE, "{repo}/-/blob/{commit:.12}/{path}#L{line}", "no placeholders"):
        assert check_link_template(template) == template
        assert parse(f"link_template: '{template}'\n").link_template == template


def test_render_link() -> None:
    source = Provenance("clusters/prod/shop/db policy.yaml", 12, SHA, None)
    assert render_link(TEMPLATE, source) == (
        f"https://github.com/acme/platform/blob/{SHA}/clusters/prod/shop/db%20policy.yaml#L12"
    )
    assert render_link("{repo}@{commit:.7}:{line}", Provenance("p", 3, SHA, "https://r")) == (
        "https://r@0123456:3"
    )


def test_render_link_needs_the_commit_and_a_repo_it_uses() -> None:
    assert render_link(TEMPLATE, Provenance("p.yaml", 1, None, None)) is None
    assert render_link(TEMPLATE, None) is None
    assert render_link("{repo}/{commit}", Provenance("p.yaml", 1, SHA, None)) is None
    assert render_link("x/{commit}", Provenance("p.yaml", 1, SHA, None)) == f"x/{SHA}"


# --- the bundled example ----------------------------------------------------------------


def test_bundled_example_loads_and_its_commented_daemon_keys_are_valid() -> None:
    assert load_settings(EXAMPLE, environ={}).desired is None
    # The commented `driftwatch run` block, uncommented, is a valid configuration too.
    text = EXAMPLE.read_text()
    block = text.split("# --- driftwatch run", 1)[1].split("# --- end", 1)[0]
    lines = [line.removeprefix("# ") for line in block.splitlines()[1:] if line.startswith("# ")]
    uncommented = text.split("# --- driftwatch run", 1)[0] + "\n".join(lines) + "\n"
    s = parse_settings(uncommented, "example", base_dir=EXAMPLE.parent, environ={})
    assert s.cluster.name != "default"
    assert require_desired(s).path == EXAMPLE.parent / "policies"
    assert s.link_template is not None
    assert s.log.format == "auto"
