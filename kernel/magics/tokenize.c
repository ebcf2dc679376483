/* %tokenize: how the loaded text model's tokenizer cuts a text, so a prompt's
 * length (len=, init=) is known before a %tokens run rather than found by
 * trial and error. The tokenizer is the engine's (am_tokenizer_*); this file
 * only lays out its answer.
 *
 * Legend for shapes: T = tokens of the text. */
#include <stdlib.h>
#include <string.h>

#include "display.h"
#include "magics.h"
#include "session.h"
#include "text.h"
#include "util.h"

/* The piece of token id as printable text (malloc'd). */
static char *piece_text(const am_tokenizer *t, int64_t id)
{
    const mg_engine_api *e = mg_engine();
    int n = e->am_tokenizer_token_text(t, id, NULL, 0);
    if (n < 0)
        return mg_strdup("?");
    char *buf = mg_xmalloc((size_t)n + 1);
    e->am_tokenizer_token_text(t, id, buf, (size_t)n + 1);
    return buf;
}

/* The table: position, id, piece; the ids in one line under it, to paste. */
static void show_tokens(const mg_call *c, const am_tokenizer *t, const int64_t *ids, size_t n)
{
    const mg_engine_api *e = mg_engine();
    const char *header[] = {"position", "id", "piece"};
    char **cells = mg_xcalloc(n * 3 + 1, sizeof *cells); /* (T, 3) */
    mg_str line = MG_STR_INIT;
    for (size_t i = 0; i < n; i++) {
        cells[3 * i] = mg_asprintf("%zu", i);
        cells[3 * i + 1] = mg_asprintf("%lld", (long long)ids[i]);
        cells[3 * i + 2] = piece_text(t, ids[i]);
        mg_str_addf(&line, "%s%lld", i ? ", " : "", (long long)ids[i]);
    }
    int64_t bos = e->am_tokenizer_bos(t);
    char *caption =
        mg_asprintf("%zu tokens (%s)%s: [%s]", n, e->am_tokenizer_describe(t),
                    bos >= 0 ? "; the model's start token is not counted" : "", mg_str_cstr(&line));
    render_table tab = {.n_cols = 3,
                        .n_rows = (int)n,
                        .header = header,
                        .cells = (const char *const *)cells,
                        .caption = caption};
    mg_send_table(c, &tab);
    for (size_t i = 0; i < n * 3; i++)
        free(cells[i]);
    free(cells);
    free(caption);
    mg_str_free(&line);
}

mg_status mg_magic_tokenize(mg_call *c)
{
    mg_session *s = mg_session_of(c);
    if (mg_session_need_model(c, s) != MG_OK)
        return MG_ERROR;
    const mg_engine_api *e = mg_engine();
    const char *text = c->is_cell ? c->body : c->positional;
    if (!text)
        return mg_fail(c, "ValueError",
                       "%%tokenize needs a text: %%tokenize \"The cat sat\" (quoted when it has "
                       "spaces), or %%%%tokenize with the text in the cell's body");
    char *err = NULL;
    am_tokenizer *t = mg_model_tokenizer(s->model, &err);
    if (!t) {
        mg_status st = mg_fail(c, "TokenizerError", "%%tokenize on %s: %s", s->model_name, err);
        free(err);
        return st;
    }
    int64_t *ids = NULL;
    size_t n = 0;
    int rc = e->am_tokenizer_encode(t, text, strlen(text), &ids, &n);
    mg_status st = MG_OK;
    if (rc != AM_OK)
        st = mg_fail(c, "TokenizerError", "%s", e->am_tokenizer_error(t));
    else
        show_tokens(c, t, ids, n);
    free(ids);
    e->am_tokenizer_free(t);
    return st;
}
