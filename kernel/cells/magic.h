/* The magic registry and interpreter.
 *
 * A cell is a sequence of line magics (`%name args`, one per line, run in
 * order, stopping at the first error) or one cell magic (`%%name args` on
 * the first line, the rest of the cell is its body). `name?`, `%name?` and
 * `%%name?` show help. Every magic is one entry of a registry's table:
 * name, kinds, summary, help, an optional bare first argument, typed keys,
 * the function that runs it, and optional completion and preparation hooks.
 * The interpreter knows no magic itself: whoever creates it hands it a
 * registry (main.c hands it the actmax magics, the unit tests a small test
 * registry), as xeus hands an interpreter to its kernel. */
#ifndef ACTMAX_MAGIC_H
#define ACTMAX_MAGIC_H

#include <stdbool.h>
#include <stddef.h>

#include "args.h"
#include "magic_keys.h"
#include "sink.h"

typedef enum mg_status { MG_OK = 0, MG_ERROR = 1, MG_INTERRUPTED = 2 } mg_status;

/* ---- typed keys -------------------------------------------------------- */

typedef struct mg_value {
    bool set;   /* holds a value (given, from %set, or the default) */
    bool given; /* typed on the magic line */
    long long i;
    double f;
    bool b;
    int e;   /* enum: index into choices */
    char *s; /* string and enum text; owned */
} mg_value;

/* Parses text for key k. 0, or -1 with *err (malloc'd) naming the key, what
 * was given and what is valid. */
int mg_value_parse(const mg_key *k, const char *text, mg_value *out, char **err);
void mg_value_copy(mg_value *dst, const mg_value *src);
void mg_value_clear(mg_value *v);
char *mg_value_format(const mg_key *k, const mg_value *v); /* as a user would type it */
const char *mg_type_name(const mg_key *k);                 /* INT, FLOAT, TEXT, BOOL, a|b|c */
size_t mg_keys_count(const mg_key *keys);
const mg_key *mg_keys_find(const mg_key *keys, const char *name, size_t *index);

/* ---- magics ------------------------------------------------------------ */

enum { MG_LINE = 1, MG_CELL = 2 };

typedef struct mg_interp mg_interp;
typedef struct mg_magic mg_magic;

/* One invocation of a magic. */
typedef struct mg_call {
    const mg_magic *magic;
    mg_interp *interp;
    const mg_sink *out;
    const char *positional; /* bare first argument, NULL when none */
    const char *body;       /* cell magic body, NULL for line magics */
    bool is_cell;
    size_t line;         /* 1-based line of the magic in the cell */
    const mg_args *args; /* as typed */
    mg_value *values;    /* one per key of magic->keys, resolved */
} mg_call;

/* Completion. Offsets are bytes; the kernel converts to code points. */
typedef struct mg_completions {
    char **v;
    size_t n, cap;
    size_t start, end; /* replaced range, bytes in the cell */
} mg_completions;

typedef struct mg_complete_ctx {
    mg_interp *interp;
    const mg_magic *magic;
    const char *args; /* the text after the magic name (or the cell body) */
    size_t len;
    size_t cursor;      /* cursor, bytes into args */
    size_t word_start;  /* start of the word being completed, bytes into args */
    const char *key;    /* completing the value of this key, else NULL */
    bool in_positional; /* the word belongs to the bare first argument */
    bool in_body;       /* args is a cell magic's body */
    size_t base;        /* offset of args in the cell (for mg_completions_from) */
} mg_complete_ctx;

typedef void (*mg_complete_fn)(const mg_complete_ctx *cx, mg_completions *out);

void mg_completions_add(mg_completions *c, const char *candidate);
/* Replace from this byte offset of cx->args instead of the word start. */
void mg_completions_from(mg_completions *c, const mg_complete_ctx *cx, size_t args_offset);
void mg_completions_free(mg_completions *c);

struct mg_magic {
    const char *name;
    unsigned kinds; /* MG_LINE, MG_CELL or both */
    const char *summary;
    const char *help;
    const char *positional; /* metavar of the bare first argument; NULL: none */
    const char *positional_doc;
    bool positional_required;
    const mg_key *keys; /* MG_KEY_END-terminated; NULL: no keys */
    mg_status (*run)(mg_call *c);
    mg_complete_fn complete; /* optional: extra candidates (layers, labels, ...) */
    /* Optional: run before the magic, every time (loads what it needs, e.g.
     * the engine); 0, or -1 with *err (malloc'd), shown as an EngineError. */
    int (*prepare)(char **err);
};

/* What an interpreter runs: the magics, the session settings, and the
 * magics' own per-interpreter state (the engine session), which the
 * interpreter only creates, frees and asks about the word under a cursor. */
typedef struct mg_registry {
    const mg_magic *magics;          /* ends with an entry whose name is NULL */
    const mg_key *settings;          /* the %set defaults, MG_KEY_END-terminated */
    void *(*state_new)(void);        /* optional */
    void (*state_free)(void *state); /* optional */
    /* Optional: help (malloc'd) for the word under cursor (bytes into code)
     * in a magic that has a prepare hook, or NULL. */
    char *(*inspect)(void *state, const char *code, size_t len, size_t cursor);
} mg_registry;

const mg_magic *mg_magic_find(const mg_registry *reg, const char *name, unsigned kind);
/* Help text (malloc'd) of a magic as line (kind MG_LINE) or cell magic. */
char *mg_magic_help(const mg_magic *m, unsigned kind);
char *mg_lsmagic_text(const mg_registry *reg);
/* "unknown magic %maximise; did you mean %maximize? ..." (malloc'd). */
char *mg_unknown_magic_message(const mg_registry *reg, const char *name, unsigned kind);
char *mg_help_overview(const mg_registry *reg);
/* The session defaults with their current values. */
char *mg_settings_help(const mg_interp *it);
/* The key tables of every magic (and of %set) as Markdown, each between
 * <!-- keys:NAME --> and <!-- /keys:NAME --> lines, for docs/magics.md. */
char *mg_registry_markdown(const mg_registry *reg);
/* Checks every table entry (names, defaults, enum choices); 0 or -1 with *err. */
int mg_registry_check(const mg_registry *reg, char **err);

/* Typed access to a call's keys. Asking for an undeclared key is a
 * programming error: it is logged and a zero value returned. */
long long mg_int(const mg_call *c, const char *key);
double mg_float(const mg_call *c, const char *key);
bool mg_bool(const mg_call *c, const char *key);
const char *mg_string(const mg_call *c, const char *key); /* "" when unset */
const char *mg_enum(const mg_call *c, const char *key);   /* the choice text */
bool mg_given(const mg_call *c, const char *key);

/* Emits an error output and returns MG_ERROR. */
mg_status mg_fail(const mg_call *c, const char *ename, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

/* ---- interpreter ------------------------------------------------------- */

/* An interpreter over reg (borrowed: it must outlive the interpreter). */
mg_interp *mg_interp_new(const mg_registry *reg);
void mg_interp_free(mg_interp *it);
const mg_registry *mg_interp_registry(const mg_interp *it);

/* Checks the whole cell (syntax, magic names, keys), then runs it. */
mg_status mg_interp_run(mg_interp *it, const char *code, const mg_sink *out);

/* The registry's per-interpreter state (the engine session: model, runs),
 * created with state_new on first use; NULL when the registry has none. */
void *mg_interp_state(mg_interp *it);

/* Session defaults (%set). */
const mg_value *mg_setting(const mg_interp *it, const char *name);
int mg_setting_set(mg_interp *it, const char *name, const char *text, char **err);

/* Completion at cursor (a byte offset in code). */
void mg_interp_complete(mg_interp *it, const char *code, size_t cursor, mg_completions *out);
/* The same with the cursor and the replaced range in code points, as the
 * Jupyter protocol counts them. */
void mg_interp_complete_cp(mg_interp *it, const char *code, size_t cursor_cp, mg_completions *out,
                           size_t *start_cp, size_t *end_cp);
/* Help for what is under the cursor (byte offset), or NULL. */
char *mg_interp_inspect(mg_interp *it, const char *code, size_t cursor);
/* "complete", "incomplete" or "invalid". */
const char *mg_interp_is_complete(mg_interp *it, const char *code);

#endif
