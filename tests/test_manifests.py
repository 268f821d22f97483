"""Reading manifest files: documents, their lines, and errors that name file:line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from driftwatch.manifests import (
    Document,
    ManifestError,
    is_resource,
    iter_manifest_files,
    read_documents,
    read_file,
)
from driftwatch.manifests._yaml import _exact, _fast


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def lines_and_kinds(documents: list[Document]) -> list[tuple[int, Any]]:
    return [(d.line, d.data.get("kind")) for d in documents]


def test_multi_document_yaml_skips_empty_documents_and_gives_first_content_lines(
    tmp_path: Path,
) -> None:
    text = (
        "# leading comment\n"  # 1
        "---\n"  # 2
        "---\n"  # 3  (an empty document)
        "apiVersion: v1\n"  # 4
        "kind: ConfigMap\n"  # 5
        "---\n"  # 6
        "# comment inside the document\n"  # 7
        "\n"  # 8
        "kind: Secret\n"  # 9
        "---\n"  # 10
        "...\n"  # 11
        "---\n"  # 12
        "kind: Service\n"  # 13
    )
    documents = read_file(write(tmp_path / "app.yaml", text), "apps/app.yaml")
    assert lines_and_kinds(documents) == [(4, "ConfigMap"), (9, "Secret"), (13, "Service")]
    assert {d.path for d in documents} == {"apps/app.yaml"}


def test_list_is_expanded_with_each_items_own_line() -> None:
    text = (
        "apiVersion: v1\n"  # 1
        "items:\n"  # 2
        "- apiVersion: v1\n"  # 3
        "  kind: ConfigMap\n"  # 4
        "  metadata: {name: a}\n"  # 5
        "-   kind: Secret\n"  # 6
        "    metadata:\n"  # 7
        "      name: b\n"  # 8
        "-\n"  # 9
        "  kind: Service\n"  # 10
        "kind: List\n"  # 11
        "metadata:\n"  # 12
        "  resourceVersion: ''\n"  # 13
    )
    documents = read_documents(text, "dump.yaml")
    assert lines_and_kinds(documents) == [(3, "ConfigMap"), (6, "Secret"), (10, "Service")]


def test_typed_list_items_get_the_kind_and_api_version_the_list_implies() -> None:
    text = (
        "apiVersion: networking.k8s.io/v1\n"
        "kind: NetworkPolicyList\n"
        "items:\n"
        "- metadata: {name: a, namespace: x}\n"  # 4: no kind, as the API server sends items
        "- apiVersion: networking.k8s.io/v1\n"  # 5
        "  kind: NetworkPolicy\n"
        "  metadata: {name: b}\n"
    )
    first, second = read_documents(text, "np.yaml")
    assert (first.line, second.line) == (4, 5)
    assert first.data == {
        "metadata": {"name": "a", "namespace": "x"},
        "kind": "NetworkPolicy",
        "apiVersion": "networking.k8s.io/v1",
    }
    assert second.data["metadata"] == {"name": "b"}


def test_empty_list_gives_no_documents_and_a_list_kind_without_items_is_a_document() -> None:
    assert read_documents("apiVersion: v1\nkind: List\nitems: []\n", "empty.yaml") == []
    (document,) = read_documents("kind: AllowList\nspec: {}\n", "crd.yaml")
    assert document.data == {"kind": "AllowList", "spec": {}}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "kind: A\nspec:\n  x: 1\nmetadata: {}\nspec: 2\n",
            "a.yaml:5: duplicate key 'spec' (first at line 2)",
        ),
        (
            "---\nkind: A\n---\nkind: B\nmetadata:\n  labels:\n    app: x\n    app: y\n",
            "a.yaml:8: duplicate key 'app' (first at line 7)",
        ),
        (  # a merge key may be overridden, but not a key given twice
            "base: &b {x: 1}\nother:\n  <<: *b\n  x: 2\n  y: 3\n  y: 4\n",
            "a.yaml:6: duplicate key 'y' (first at line 5)",
        ),
    ],
)
def test_duplicate_key_names_file_and_line_of_the_repeat(text: str, expected: str) -> None:
    with pytest.raises(ManifestError) as caught:
        read_documents(text, "a.yaml")
    assert str(caught.value) == expected


def test_malformed_yaml_names_file_and_line_on_one_line() -> None:
    text = "kind: A\nspec:\n  ports: [80, 443\n  podSelector: {}\n"
    with pytest.raises(ManifestError) as caught:
        read_documents(text, "web.yaml")
    error = caught.value
    assert (error.path, error.line) == ("web.yaml", 4)
    assert str(error).startswith("web.yaml:4: while parsing a flow sequence (line 3): ")
    assert "\n" not in str(error)


def test_bad_indentation_and_tabs_name_their_line() -> None:
    with pytest.raises(ManifestError, match=r"^i\.yaml:3: "):
        read_documents("a:\n  b: 1\n c: 2\n", "i.yaml")
    with pytest.raises(ManifestError, match=r"^t\.yaml:2: .*cannot start any token"):
        read_documents("a:\n\tb: 1\n", "t.yaml")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("kind: A\n---\n- 1\n- 2\n", "doc.yaml:3: document is not a mapping (got a list)"),
        ("---\njust text\n", "doc.yaml:2: document is not a mapping (got a string)"),
        (
            "kind: List\nitems:\n- kind: A\n- 42\n",
            "doc.yaml:4: List item is not a mapping (got a number)",
        ),
    ],
)
def test_non_mapping_document_or_item_names_its_line(text: str, expected: str) -> None:
    with pytest.raises(ManifestError) as caught:
        read_documents(text, "doc.yaml")
    assert str(caught.value) == expected


def test_scalars_resolve_as_kubectl_reads_them() -> None:
    (document,) = read_documents(
        "created: 2024-01-01T00:00:00Z\nday: 2024-01-01\nport: 0x50\nmode: 0755\n"
        "flag: yes\nquoted: 'yes'\nnothing: ~\nequals: =\n",
        "s.yaml",
    )
    assert document.data == {
        "created": "2024-01-01T00:00:00Z",  # timestamps stay strings
        "day": "2024-01-01",
        "port": 80,
        "mode": 0o755,
        "flag": True,  # YAML 1.1, like go-yaml
        "quoted": "yes",
        "nothing": None,
        "equals": "=",
    }


def test_anchors_aliases_and_merge_keys_are_supported() -> None:
    text = "base: &b {app: web, tier: fe}\nkind: A\nlabels:\n  <<: *b\n  tier: be\nsame: *b\n"
    (document,) = read_documents(text, "m.yaml")
    assert document.data["labels"] == {"app": "web", "tier": "be"}
    assert document.data["same"] == {"app": "web", "tier": "fe"}


_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**40), max_value=2**40)
    | st.floats(allow_nan=False)
    | st.text(max_size=12)
)
_values = st.recursive(
    _scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=25,
)
_documents = st.lists(st.dictionaries(st.text(max_size=8), _values, max_size=5), max_size=4)


@settings(max_examples=150, deadline=None)
@given(documents=_documents, flow=st.sampled_from([False, None, True]))
def test_fast_path_agrees_with_pyyaml_composition(
    documents: list[dict[str, Any]], flow: bool | None
) -> None:
    text = yaml.safe_dump_all(documents, default_flow_style=flow)
    fast = _fast(text)
    assert fast == _exact(text)
    assert [data for _, data, _ in fast] == documents


@settings(max_examples=60, deadline=None)
@given(items=st.lists(st.dictionaries(st.text(max_size=6), _values, max_size=3), max_size=5))
def test_json_and_yaml_give_the_same_list_items(items: list[dict[str, Any]]) -> None:
    dump = {"apiVersion": "v1", "kind": "List", "items": [{"kind": "A", **i} for i in items]}
    from_json = read_documents(json.dumps(dump, indent=4), "dump.json")
    from_yaml = read_documents(yaml.safe_dump(dump), "dump.yaml")
    assert [d.data for d in from_json] == [d.data for d in from_yaml] == dump["items"]


def test_json_list_items_have_their_own_lines() -> None:
    text = (
        "{\n"  # 1
        '  "kind": "List",\n'  # 2
        '  "items": [\n'  # 3
        '    {"kind": "A"},\n'  # 4
        "\n"  # 5
        "    {\n"  # 6
        '      "kind": "B"\n'  # 7
        "    }\n"
        "  ]\n"
        "}\n"
    )
    documents = read_documents(text, "dump.json")
    assert lines_and_kinds(documents) == [(4, "A"), (6, "B")]


def test_json_document_line_is_its_first_line() -> None:
    (document,) = read_documents('\n\n{"kind": "A"}', "one.json")
    assert (document.line, document.data) == (3, {"kind": "A"})
    assert read_documents(" \n", "blank.json") == []


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            '{\n  "kind": "List",\n  "items": [\n    {"kind": "A",\n     "kind": "B"}\n  ]\n}',
            "d.json:5: duplicate key 'kind' (first at line 4)",
        ),
        ('{\n  "kind": "A",\n  "spec": \n}', "d.json:4: invalid JSON: Expecting value"),
        ('{"kind": "A"}\n{"kind": "B"}', "d.json:2: invalid JSON: Extra data"),
        ("[1, 2]", "d.json:1: document is not a mapping (got a list)"),
    ],
)
def test_json_errors_name_file_and_line(text: str, expected: str) -> None:
    with pytest.raises(ManifestError) as caught:
        read_documents(text, "d.json")
    assert str(caught.value) == expected


def test_iter_manifest_files_walks_sorted_and_skips_hidden_and_other_files(tmp_path: Path) -> None:
    for name in [
        "b.yaml",
        "a/z.yml",
        "a/y.json",
        "a/notes.txt",
        ".hidden.yaml",
        ".git/config.yaml",
        "c/.secret/x.yaml",
        "c/d.YAML",
    ]:
        write(tmp_path / name, "kind: A\n")
    found = [p.relative_to(tmp_path).as_posix() for p in iter_manifest_files(tmp_path)]
    assert found == ["a/y.json", "a/z.yml", "b.yaml", "c/d.YAML"]
    single = tmp_path / "a" / "notes.txt"
    assert iter_manifest_files(single) == [single]
    with pytest.raises(ManifestError, match="no such file or directory"):
        iter_manifest_files(tmp_path / "missing")


def test_read_file_errors_are_clear_one_liners(tmp_path: Path) -> None:
    with pytest.raises(ManifestError) as caught:
        read_file(tmp_path / "missing.yaml", "missing.yaml")
    assert str(caught.value) == "missing.yaml: cannot read file: No such file or directory"

    binary = tmp_path / "bin.yaml"
    binary.write_bytes(b"kind: A\nname: \xff\xfe\n")
    with pytest.raises(ManifestError) as caught:
        read_file(binary, "bin.yaml")
    assert str(caught.value) == "bin.yaml:2: file is not UTF-8 text"


def test_read_file_accepts_a_byte_order_mark(tmp_path: Path) -> None:
    path = tmp_path / "bom.yaml"
    path.write_bytes("\ufeffkind: A\n".encode())
    assert [d.data for d in read_file(path, "bom.yaml")] == [{"kind": "A"}]


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy"}, True),
        ({"kind": "NetworkPolicy"}, True),
        ({"apiVersion": "projectcalico.org/v3", "kind": "NetworkPolicy"}, False),
        ({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress"}, False),
    ],
)
def test_is_resource_matches_kind_and_api_group(data: dict[str, Any], expected: bool) -> None:
    assert is_resource(data, "NetworkPolicy", "networking.k8s.io") is expected
