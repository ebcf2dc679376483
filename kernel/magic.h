/* The magic registry and interpreter.
 *
 * A cell is a sequence of line magics (`%name args`, one per line, run in
 * order, stopping at the first error) or one cell magic (`%%name args` on
 * the first line, the rest of the cell is its body). `name?`, `%name?` and
 * `%%name?` show help. Every magic is one entry of the table in
 * magic_table.c: name, kinds, summary, help, an optional bare first
 * argument, typed keys, the function that runs it, and an optional
 * completion hook. */
#ifndef ACTMAX_MAGIC_H
#define ACTMAX_MAGIC_H

#include <stdbool.h>
#include <stddef.h>

#include "args.h"
#include "sink.h"

typedef enum am_status { AM_OK = 0, AM_ERROR = 1, AM_INTERRUPTED = 2 } am_status;

/* ---- typed keys -------------------------------------------------------- */

typedef enum am_type { AM_T_INT, AM_T_FLOAT, AM_T_STRING, AM_T_BOOL, AM_T_ENUM } am_type;

typedef struct am_key {
    const char *name;
    am_type type;
    const char *def;     /* default, written as a user would type it; NULL: none */
    double lo, hi;       /* inclusive range (int, float) */
    const char *choices; /* enum: "auto|cpu|cuda" */
    const char *doc;     /* one line */
} am_key;

#define AM_KEY_INT(n, def, lo, hi, doc) {n, AM_T_INT, def, lo, hi, NULL, doc}
#define AM_KEY_FLOAT(n, def, lo, hi, doc) {n, AM_T_FLOAT, def, lo, hi, NULL, doc}
#define AM_KEY_STRING(n, def, doc) {n, AM_T_STRING, def, 0, 0, NULL, doc}
#define AM_KEY_BOOL(n, def, doc) {n, AM_T_BOOL, def, 0, 0, NULL, doc}
#define AM_KEY_ENUM(n, def, choices, doc) {n, AM_T_ENUM, def, 0, 0, choices, doc}
#define AM_KEY_END {0}

typedef struct am_value {
    bool set;   /* holds a value (given, from %set, or the default) */
    bool given; /* typed on the magic line */
    long long i;
    double f;
    bool b;
    int e;      /* enum: index into choices */
    char *s;    /* string and enum text; owned */
} am_value;

/* Parses text for key k. 0, or -1 with *err (malloc'd) naming the key, what
 * was given and what is valid. */
int am_value_parse(const am_key *k, const char *text, am_value *out, char **err);
void am_value_copy(am_value *dst, const am_value *src);
void am_value_clear(am_value *v);
char *am_value_format(const am_key *k, const am_value *v); /* as a user would type it */
const char *am_type_name(const am_key *k);                  /* INT, FLOAT, TEXT, BOOL, a|b|c */
size_t am_keys_count(const am_key *keys);
const am_key *am_keys_find(const am_key *keys, const char *name, size_t *index);

/* ---- magics ------------------------------------------------------------ */

enum { AM_LINE = 1, AM_CELL = 2 };

typedef struct am_interp am_interp;
typedef struct am_magic am_magic;

/* One invocation of a magic. */
typedef struct am_call {
    const am_magic *magic;
    am_interp *interp;
    const am_sink *out;
    const char *positional; /* bare first argument, NULL when none */
    const char *body;       /* cell magic body, NULL for line magics */
    bool is_cell;
    size_t line;            /* 1-based line of the magic in the cell */
    const am_args *args;    /* as typed */
    am_value *values;       /* one per key of magic->keys, resolved */
} am_call;

/* Completion. Offsets are bytes; the kernel converts to code points. */
typedef struct am_completions {
    char **v;
    size_t n, cap;
    size_t start, end; /* replaced range, bytes in the cell */
} am_completions;

typedef struct am_complete_ctx {
    am_interp *interp;
    const am_magic *magic;
    const char *args;   /* the text after the magic name (or the cell body) */
    size_t len;
    size_t cursor;      /* cursor, bytes into args */
    size_t word_start;  /* start of the word being completed, bytes into args */
    const char *key;    /* completing the value of this key, else NULL */
    bool in_positional; /* the word belongs to the bare first argument */
    bool in_body;       /* args is a cell magic's body */
    size_t base;        /* offset of args in the cell (for am_completions_from) */
} am_complete_ctx;

typedef void (*am_complete_fn)(const am_complete_ctx *cx, am_completions *out);

void am_completions_add(am_completions *c, const char *candidate);
/* Replace from this byte offset of cx->args instead of the word start. */
void am_completions_from(am_completions *c, const am_complete_ctx *cx, size_t args_offset);
void am_completions_free(am_completions *c);

struct am_magic {
    const char *name;
    unsigned kinds; /* AM_LINE, AM_CELL or both */
    const char *summary;
    const char *help;
    const char *positional;     /* metavar of the bare first argument; NULL: none */
    const char *positional_doc;
    bool positional_required;
    const am_key *keys;         /* AM_KEY_END-terminated; NULL: no keys */
    am_status (*run)(am_call *c);
    am_complete_fn complete;    /* optional: extra candidates (layers, labels, ...) */
    bool needs_engine;          /* load libactmax (dlopen) before the first run */
};

/* The tables, filled in one place: magic_table.c. */
extern const am_magic am_magic_table[];
extern const am_key am_settings_table[];

const am_magic *am_magic_find(const char *name, unsigned kind);
/* Help text (malloc'd) of a magic as line (kind AM_LINE) or cell magic. */
char *am_magic_help(const am_magic *m, unsigned kind);
char *am_lsmagic_text(void);
/* "unknown magic %maximise; did you mean %maximize? ..." (malloc'd). */
char *am_unknown_magic_message(const char *name, unsigned kind);
char *am_help_overview(void);
/* The session defaults with their current values. */
char *am_settings_help(const am_interp *it);
/* Checks every table entry (names, defaults, enum choices); 0 or -1 with *err. */
int am_registry_check(char **err);

/* Typed access to a call's keys. Asking for an undeclared key is a
 * programming error: it is logged and a zero value returned. */
long long am_int(const am_call *c, const char *key);
double am_float(const am_call *c, const char *key);
bool am_bool(const am_call *c, const char *key);
const char *am_string(const am_call *c, const char *key); /* "" when unset */
const char *am_enum(const am_call *c, const char *key);   /* the choice text */
bool am_given(const am_call *c, const char *key);

/* Emits an error output and returns AM_ERROR. */
am_status am_fail(const am_call *c, const char *ename, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

/* ---- interpreter ------------------------------------------------------- */

am_interp *am_interp_new(void);
void am_interp_free(am_interp *it);

/* Checks the whole cell (syntax, magic names, keys), then runs it. */
am_status am_interp_run(am_interp *it, const char *code, const am_sink *out);

/* Session defaults (%set). */
const am_value *am_setting(const am_interp *it, const char *name);
int am_setting_set(am_interp *it, const char *name, const char *text, char **err);

/* Completion at cursor (a byte offset in code). */
void am_interp_complete(am_interp *it, const char *code, size_t cursor, am_completions *out);
/* The same with the cursor and the replaced range in code points, as the
 * Jupyter protocol counts them. */
void am_interp_complete_cp(am_interp *it, const char *code, size_t cursor_cp, am_completions *out,
                           size_t *start_cp, size_t *end_cp);
/* Help for what is under the cursor (byte offset), or NULL. */
char *am_interp_inspect(am_interp *it, const char *code, size_t cursor);
/* "complete", "incomplete" or "invalid". */
const char *am_interp_is_complete(am_interp *it, const char *code);

/* ---- engine ------------------------------------------------------------ */

/* Loads libactmax with dlopen on first use; 0, or -1 with *err. */
int am_engine_load(char **err);
void *am_engine_handle(void);

#endif
