"""The engine's C contract, read from actmax.h itself: every exported
function is in the function table and the table holds nothing else; the
table's version, size, struct sizes and function pointers are those of the
library; every status code has its message and class.

The header is parsed with a few regular expressions (its declarations follow
one layout: `AM_API <type> name(`), so a function added without its table
entry, or a table entry left behind by a removed function, fails here.

This is the one test that reaches the library without the Python module:
ctypes opens it for am_get_api and the exported symbols, and every other
call goes through the table's own function pointers, as a front's would."""
import ctypes as C
import os
import re

import pytest

import actmax

HERE = os.path.dirname(os.path.abspath(__file__))
HEADER = os.path.join(HERE, "..", "..", "ext", "include", "actmax.h")


def _library():
    path = os.environ.get("ACTMAX_LIB")
    if not path:
        pytest.skip("ACTMAX_LIB is not set (CTest sets it to the build's libactmax.so)")
    return C.CDLL(path)


@pytest.fixture(scope="module")
def lib():
    return _library()


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


def test_every_declared_function_is_listed_once(header, lib):
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
        assert hasattr(lib, f), f"{f} is not exported by libactmax"


def _table_type(header):
    fields = [("api_version", C.c_uint32), ("size", C.c_uint32), ("version", C.c_char_p)]
    fields += [("sizeof_" + s, C.c_uint32) for s in _structs(header)]
    fields += [(f, C.c_void_p) for f in _listed(header)]
    return type("ApiTable", (C.Structure,), {"_fields_": fields})


def _get_api(lib, version):
    fn = lib.am_get_api
    fn.restype = C.c_void_p
    fn.argtypes = [C.c_uint32, C.POINTER(C.c_uint32)]
    engine = C.c_uint32(0xFFFFFFFF)
    p = fn(version, C.byref(engine))
    return p, engine.value


def _table(header, lib):
    """The engine's function table (checked to be there), as a ctypes struct."""
    api, _ = _api_version()
    p, _ = _get_api(lib, api)
    assert p, "am_get_api refused its own AM_API_VERSION"
    return _table_type(header).from_address(p)


def _fn(table, name, restype, *argtypes):
    """A function of the table, called through its pointer."""
    return C.CFUNCTYPE(restype, *argtypes)(getattr(table, name))


def test_table_matches_the_header_and_the_library(header, lib):
    api, version = _api_version()
    p, engine = _get_api(lib, api)
    assert engine == api
    assert p, "am_get_api refused its own AM_API_VERSION"
    Table = _table_type(header)
    t = Table.from_address(p)
    assert t.api_version == api
    assert t.version.decode() == version
    assert _fn(t, "am_version", C.c_char_p)().decode() == version
    # The module was built from the same header and loads this library.
    assert actmax.engine()["api_version"] == api and actmax.engine()["version"] == version
    assert t.size == C.sizeof(Table), "sizeof(am_api) differs from the layout the header's lists give"
    for f in _listed(header):
        addr = C.cast(getattr(lib, f), C.c_void_p).value
        assert getattr(t, f) == addr, f"the table's {f} is not the exported {f}"


# The structs a front passes by pointer; the Python module's compiled sizes
# (actmax._actmax.STRUCT_SIZES, from the same header) must be the engine's.
_BY_POINTER = ["am_tensor", "am_input", "am_layer_info", "am_progress", "am_options", "am_text_progress",
               "am_text_options", "am_model_load_options",
               "am_examples_options", "am_example"]


def test_struct_sizes(header, lib):
    t = _table(header, lib)
    structs = _structs(header)
    for s in structs:
        assert getattr(t, "sizeof_" + s) > 0, s
    sizes = actmax._actmax.STRUCT_SIZES
    assert sorted(sizes) == sorted(structs), "the module was built from another AM_API_STRUCTS"
    for name in _BY_POINTER:
        assert name in structs, f"{name} is passed by pointer but missing from AM_API_STRUCTS"
    for name in structs:
        assert sizes[name] == getattr(t, "sizeof_" + name), \
            f"the module's {name} is {sizes[name]} bytes, the engine's {getattr(t, 'sizeof_' + name)}"


def test_other_version_is_refused_and_named(header, lib):
    api, _ = _api_version()
    for other in (0, api + 1, api - 1 if api > 1 else 1000, 0xFFFFFFFF):
        if other == api:
            continue
        p, engine = _get_api(lib, other)
        assert not p, f"am_get_api({other}) returned a table; only {api} may"
        assert engine == api


def test_status_messages_and_classes(header, lib):
    statuses = _statuses(header)
    assert len(statuses) >= 10
    t = _table(header, lib)
    strerror = _fn(t, "am_strerror", C.c_char_p, C.c_int)
    status_class = _fn(t, "am_status_class", C.c_char_p, C.c_int)
    values = [v for _, v, _, _ in statuses]
    assert len(set(values)) == len(values), "two statuses share a value"
    assert dict((n, v) for n, v, _, _ in statuses)["OK"] == 0
    for name, value, text, cls in statuses:
        assert strerror(value).decode() == text, name
        assert status_class(value).decode() == cls, name
        if value != 0:
            assert value < 0 and cls.endswith("Error"), name
    for unknown in (1, -11, -1000):
        assert strerror(unknown).decode() == "unknown status code"
        assert status_class(unknown).decode() == "EngineError"


def test_null_handles_and_codes(header, lib):
    """NULL handles are refused with AM_E_ARG, frees of NULL are no-ops."""
    t = _table(header, lib)
    P = C.c_void_p
    _fn(t, "am_model_free", None, P)(None)
    _fn(t, "am_run_free", None, P)(None)
    _fn(t, "am_tensor_release", None, P)(None)
    load = _fn(t, "am_model_load", C.c_int, C.c_char_p, C.c_char_p, P, C.c_int, P)
    assert load(b"x", None, None, 0, None) == -1
    assert _fn(t, "am_model_num_layers", C.c_int, P)(None) == -1
    strerror = _fn(t, "am_strerror", C.c_char_p, C.c_int)
    for code in range(0, -11, -1):
        assert strerror(code)
    assert strerror(-99) == b"unknown status code"
