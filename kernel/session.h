/* The engine session of one interpreter: the loaded model, its layer list,
 * and every run of the session. Lives in magics_engine.c; the interpreter
 * only owns and frees it, and asks it about layer names for inspection. */
#ifndef ACTMAX_SESSION_H
#define ACTMAX_SESSION_H

#include <stddef.h>

typedef struct mg_session mg_session;

mg_session *mg_session_new(void);
void mg_session_free(mg_session *s);

/* Layer information (malloc'd text) when the word under cursor (bytes into
 * code) is a layer of the loaded model, else NULL. */
char *mg_session_inspect(mg_session *s, const char *code, size_t len, size_t cursor);

#endif
