"""The engine's C contract, read from actmax.h itself: every exported
function is in the function table and the table holds nothing else; the
table's version, size, struct sizes and function pointers are those of the
library; every status code has its message and class.

The header is parsed with a few regular expressions (its declarations follow
one layout: `AM_API <type> name(`), so a function added without its table
entry, or a table entry left behind by a removed function, fails here."""
import ctypes as C
import os
import re

import pytest

import amlib

HERE = os.path.dirname(os.path.abspath(__file__))
HEADER = os.path.join(HERE, "..", "..", "ext", "include", "actmax.h")


def _strip_comments(text):
    return re.sub(r"/\*.*?\*/", " ", text, flags=re.S)


@pytest.fixture(scope="module")
def header():
    with open(HEADER) as f:
        return f.read()


def _macro_body(text, name):
    """The body of a backslash-continued #define NAME(X), comments removed."""
    m = re.search(r"#define " + name + r"\(X\)(.*?)(?<!\\)\n", text, flags=re.S)
    assert m, f"{name} not found in actmax.h"
    return _strip_comments(m.group(1).replace("\\\n", " "))


def _declared(text):
    """Names of the functions declared with AM_API, in header order."""
    body = _strip_comments(text)
    body = re.sub(r"#define[^\n]*(\\\n[^\n]*)*", " ", body)  # the macros themselves
    return re.findall(r"\bAM_API\b[^;{}()]*?\b(am_\w+)\s*\(", body)


def _listed(text):
    return re.findall(r"X\((am_\w+)\)", _macro_body(text, "AM_API_FUNCTIONS"))


def _structs(text):
    return re.findall(r"X\((am_\w+)\)", _macro_body(text, "AM_API_STRUCTS"))


def _statuses(text):
    body = _macro_body(text, "AM_STATUS_MAP")
    return [(n, int(v), t, c) for n, v, t, c in
            re.findall(r'X\(\s*(\w+)\s*,\s*(-?\d+)\s*,\s*"([^"]*)"\s*,\s*"([^"]*)"\s*\)', body)]


def _api_version():
    """AM_API_VERSION from the generated actmax_version.h of this build."""
    inc = os.environ.get("ACTMAX_GENERATED_INCLUDE")
    if not inc:
        pytest.skip("ACTMAX_GENERATED_INCLUDE is not set (CTest sets it to the build's include folder)")
    with open(os.path.join(inc, "actmax_version.h")) as f:
        text = f.read()
    api = int(re.search(r"#define AM_API_VERSION (\d+)u", text).group(1))
    version = re.search(r'#define AM_VERSION "([^"]+)"', text).group(1)
    return api, version


def test_every_declared_function_is_listed_once(header):
    declared, listed = _declared(header), _listed(header)
    assert len(declared) > 50, f"the header parse found only {len(declared)} functions"
    # The entry point is declared but not in its own table.
    assert "am_get_api" in declared and "am_get_api" not in listed
    declared = [f for f in declared if f != "am_get_api"]
    dup = sorted({f for f in listed if listed.count(f) > 1})
    assert not dup, f"listed twice in AM_API_FUNCTIONS: {dup}"
    missing = sorted(set(declared) - set(listed))
    extra = sorted(set(listed) - set(declared))
    assert not missing, f"declared in actmax.h but not in AM_API_FUNCTIONS: {missing}"
    assert not extra, f"in AM_API_FUNCTIONS but not declared in actmax.h: {extra}"
    # Every listed function is exported by the library under its name.
    for f in listed:
        assert hasattr(amlib.lib, f), f"{f} is not exported by libactmax"


def _table_type(header):
    fields = [("api_version", C.c_uint32), ("size", C.c_uint32), ("version", C.c_char_p)]
    fields += [("sizeof_" + s, C.c_uint32) for s in _structs(header)]
    fields += [(f, C.c_void_p) for f in _listed(header)]
    return type("ApiTable", (C.Structure,), {"_fields_": fields})


def _get_api(version):
    fn = amlib.lib.am_get_api
    fn.restype = C.c_void_p
    fn.argtypes = [C.c_uint32, C.POINTER(C.c_uint32)]
    engine = C.c_uint32(0xFFFFFFFF)
    p = fn(version, C.byref(engine))
    return p, engine.value


def test_table_matches_the_header_and_the_library(header):
    api, version = _api_version()
    p, engine = _get_api(api)
    assert engine == api
    assert p, "am_get_api refused its own AM_API_VERSION"
    Table = _table_type(header)
    t = Table.from_address(p)
    assert t.api_version == api
    assert t.version.decode() == version
    amlib.lib.am_version.restype = C.c_char_p
    assert amlib.lib.am_version().decode() == version
    assert t.size == C.sizeof(Table), "sizeof(am_api) differs from the layout the header's lists give"
    for f in _listed(header):
        addr = C.cast(getattr(amlib.lib, f), C.c_void_p).value
        assert getattr(t, f) == addr, f"the table's {f} is not the exported {f}"


# Struct mirrors a ctypes binding declares; each must match the engine's size.
_MIRRORS = {
    "am_tensor": amlib.Tensor, "am_input": amlib.Input, "am_layer_info": amlib.LayerInfo,
    "am_progress": amlib.Progress, "am_options": amlib.Options, "am_text_progress": amlib.TextProgress,
    "am_text_options": amlib.TextOptions, "am_text_examples_options": amlib.TextExamplesOptions,
    "am_model_load_options": amlib.LoadOptions, "am_examples_options": amlib.ExamplesOptions,
    "am_example": amlib.Example,
}


def test_struct_sizes(header):
    api, _ = _api_version()
    p, _ = _get_api(api)
    t = _table_type(header).from_address(p)
    structs = _structs(header)
    for s in structs:
        assert getattr(t, "sizeof_" + s) > 0, s
    for name, cls in _MIRRORS.items():
        assert name in structs, f"{name} is passed by pointer but missing from AM_API_STRUCTS"
        assert C.sizeof(cls) == getattr(t, "sizeof_" + name), \
            f"amlib's {cls.__name__} is {C.sizeof(cls)} bytes, the engine's {name} {getattr(t, 'sizeof_' + name)}"


def test_other_version_is_refused_and_named(header):
    api, _ = _api_version()
    for other in (0, api + 1, api - 1 if api > 1 else 1000, 0xFFFFFFFF):
        if other == api:
            continue
        p, engine = _get_api(other)
        assert not p, f"am_get_api({other}) returned a table; only {api} may"
        assert engine == api


def test_status_messages_and_classes(header):
    statuses = _statuses(header)
    assert len(statuses) >= 10
    lib = amlib.lib
    lib.am_strerror.restype = C.c_char_p
    lib.am_status_class.restype = C.c_char_p
    values = [v for _, v, _, _ in statuses]
    assert len(set(values)) == len(values), "two statuses share a value"
    assert dict((n, v) for n, v, _, _ in statuses)["OK"] == 0
    for name, value, text, cls in statuses:
        assert lib.am_strerror(value).decode() == text, name
        assert lib.am_status_class(value).decode() == cls, name
        if value != 0:
            assert value < 0 and cls.endswith("Error"), name
    for unknown in (1, -11, -1000):
        assert lib.am_strerror(unknown).decode() == "unknown status code"
        assert lib.am_status_class(unknown).decode() == "EngineError"
