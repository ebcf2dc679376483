/* Wire format, HMAC signing, replay protection, connection files. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "check.h"
#include "conn.h"
#include "wire.h"

static void hex(const unsigned char *d, size_t n, char *out)
{
    sodium_bin2hex(out, 2 * n + 1, d, n);
}

/* RFC 4231, HMAC-SHA-256 test cases 1, 2, 3, 4, 6 and 7 (5 is truncated). */
void test_hmac_rfc4231(void)
{
    unsigned char k1[20], k3[20], d3[50], k4[25], d4[50], k6[131];
    memset(k1, 0x0b, sizeof k1);
    memset(k3, 0xaa, sizeof k3);
    memset(d3, 0xdd, sizeof d3);
    for (int i = 0; i < 25; i++)
        k4[i] = (unsigned char)(i + 1);
    memset(d4, 0xcd, sizeof d4);
    memset(k6, 0xaa, sizeof k6);
    static const char m6[] = "Test Using Larger Than Block-Size Key - Hash Key First";
    static const char m7[] = "This is a test using a larger than block-size key and a larger "
                             "than block-size data. The key needs to be hashed before being "
                             "used by the HMAC algorithm.";
    const struct {
        const void *key;
        size_t klen;
        const void *msg;
        size_t mlen;
        const char *want;
    } cases[] = {
        {k1, 20, "Hi There", 8, "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"},
        {"Jefe", 4, "what do ya want for nothing?", 28,
         "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"},
        {k3, 20, d3, 50, "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe"},
        {k4, 25, d4, 50, "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b"},
        {k6, 131, m6, sizeof m6 - 1,
         "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"},
        {k6, 131, m7, sizeof m7 - 1,
         "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        unsigned char out[32];
        char h[65];
        mg_hmac_sha256(cases[i].key, cases[i].klen, cases[i].msg, cases[i].mlen, out);
        hex(out, 32, h);
        CHECK_STR(h, cases[i].want);
    }
}

static void parts_of(const char *const texts[4], mg_buf parts[4])
{
    for (int i = 0; i < 4; i++) {
        parts[i].data = (unsigned char *)(uintptr_t)texts[i];
        parts[i].len = strlen(texts[i]);
    }
}

void test_signer_parts_and_verify(void)
{
    const char *texts[4] = {"{\"msg_id\":\"1\"}", "{}", "{}", "{\"code\":\"%lsmagic\"}"};
    mg_buf parts[4];
    parts_of(texts, parts);
    mg_signer s;
    mg_signer_init(&s, "secret-key", 10);
    char sig[65];
    mg_signer_sign(&s, parts, sig);
    CHECK_INT(strlen(sig), 64);

    /* Same as one HMAC over the concatenation (what jupyter_client does). */
    char cat[256];
    snprintf(cat, sizeof cat, "%s%s%s%s", texts[0], texts[1], texts[2], texts[3]);
    unsigned char d[32];
    char h[65];
    mg_hmac_sha256("secret-key", 10, cat, strlen(cat), d);
    hex(d, 32, h);
    CHECK_STR(sig, h);

    mg_buf good = {(unsigned char *)sig, 64};
    CHECK(mg_signer_verify(&s, parts, &good));
    char upper[65];
    for (int i = 0; i < 65; i++)
        upper[i] = (char)((sig[i] >= 'a' && sig[i] <= 'f') ? sig[i] - 32 : sig[i]);
    mg_buf up = {(unsigned char *)upper, 64};
    CHECK(mg_signer_verify(&s, parts, &up));
    char bad[65];
    memcpy(bad, sig, 65);
    bad[10] = bad[10] == '0' ? '1' : '0';
    mg_buf wrong = {(unsigned char *)bad, 64};
    CHECK(!mg_signer_verify(&s, parts, &wrong));
    mg_buf short_sig = {(unsigned char *)sig, 63};
    CHECK(!mg_signer_verify(&s, parts, &short_sig));
    mg_buf empty = {(unsigned char *)"", 0};
    CHECK(!mg_signer_verify(&s, parts, &empty));
    mg_buf nothex = {(unsigned char *)"zz", 2};
    CHECK(!mg_signer_verify(&s, parts, &nothex));
    /* A change in any part breaks the signature. */
    const char *texts2[4] = {texts[0], texts[1], texts[2], "{\"code\":\"%lsmagiC\"}"};
    mg_buf parts2[4];
    parts_of(texts2, parts2);
    CHECK(!mg_signer_verify(&s, parts2, &good));
    mg_signer_free(&s);
}

void test_signer_disabled(void)
{
    const char *texts[4] = {"{}", "{}", "{}", "{}"};
    mg_buf parts[4];
    parts_of(texts, parts);
    mg_signer s;
    mg_signer_init(&s, "", 0);
    CHECK(!mg_signer_enabled(&s));
    char sig[65];
    mg_signer_sign(&s, parts, sig);
    CHECK_STR(sig, "");
    mg_buf any = {(unsigned char *)"whatever", 8};
    CHECK(mg_signer_verify(&s, parts, &any));
    mg_signer_free(&s);
}

static const char HDR[] =
    "{\"msg_id\":\"m1\",\"msg_type\":\"kernel_info_request\",\"session\":\"s\","
    "\"username\":\"u\",\"date\":\"2024-01-01T00:00:00Z\",\"version\":\"5.3\"}";

void test_wire_roundtrip(void)
{
    mg_signer s;
    mg_signer_init(&s, "k", 1);
    mg_buf ids[2] = {{(unsigned char *)"id-1", 4}, {(unsigned char *)"\0\1\2", 3}};
    mg_frames f = {0};
    mg_wire_encode(&s, ids, 2, HDR, "{}", "{}", "{\"x\":1}", &f);
    CHECK_INT(f.n, 2 + 1 + 1 + 4);
    CHECK_INT(f.v[2].len, 9);
    CHECK(memcmp(f.v[2].data, "<IDS|MSG>", 9) == 0);

    mg_wire_view v;
    const char *why = NULL;
    CHECK_INT(mg_wire_split(&f, &v, &why), 0);
    CHECK_INT(v.n_idents, 2);
    CHECK_INT(v.idents[1].len, 3);
    CHECK_INT(v.n_buffers, 0);
    CHECK_INT(v.sig->len, 64);
    CHECK_INT(v.parts[3].len, 7);

    /* Extra frames after content are binary buffers. */
    mg_frames_push(&f, "buf", 3);
    CHECK_INT(mg_wire_split(&f, &v, &why), 0);
    CHECK_INT(v.n_buffers, 1);

    mg_msg m;
    char *err = NULL;
    CHECK_INT(mg_wire_decode(&f, &s, NULL, &m, &err), 0);
    CHECK_STR(m.msg_type, "kernel_info_request");
    CHECK_STR(m.msg_id, "m1");
    CHECK_INT(m.idents.n, 2);
    CHECK(memcmp(m.idents.v[1].data, "\0\1\2", 3) == 0);
    CHECK_INT(cJSON_GetObjectItem(m.content, "x")->valueint, 1);
    CHECK(strstr(m.header_json, "\"msg_type\":\"kernel_info_request\"") != NULL);
    mg_msg_free(&m);
    mg_frames_free(&f);

    /* No identities at all (a DEALER peer would still send the delimiter). */
    mg_wire_encode(&s, NULL, 0, HDR, "{}", "{}", "{}", &f);
    CHECK_INT(mg_wire_decode(&f, &s, NULL, &m, &err), 0);
    CHECK_INT(m.idents.n, 0);
    mg_msg_free(&m);
    mg_frames_free(&f);
    mg_signer_free(&s);
}

void test_wire_split_errors(void)
{
    mg_frames f = {0};
    mg_wire_view v;
    const char *why = NULL;
    CHECK_INT(mg_wire_split(&f, &v, &why), -1); /* nothing at all */
    mg_frames_push_str(&f, "id");
    mg_frames_push_str(&f, "garbage");
    CHECK_INT(mg_wire_split(&f, &v, &why), -1);
    CHECK(strstr(why, "delimiter") != NULL);
    mg_frames_push_str(&f, "<IDS|MSG>");
    mg_frames_push_str(&f, "sig");
    mg_frames_push_str(&f, "{}");
    mg_frames_push_str(&f, "{}");
    mg_frames_push_str(&f, "{}");
    CHECK_INT(mg_wire_split(&f, &v, &why), -1); /* content missing */
    CHECK(strstr(why, "truncated") != NULL);
    mg_frames_push_str(&f, "{}");
    CHECK_INT(mg_wire_split(&f, &v, &why), 0);
    CHECK_INT(v.n_idents, 2);
    mg_frames_free(&f);
    /* A delimiter-like frame of another length is not the delimiter. */
    mg_frames_push_str(&f, "<IDS|MSG>x");
    for (int i = 0; i < 5; i++)
        mg_frames_push_str(&f, "{}");
    CHECK_INT(mg_wire_split(&f, &v, &why), -1);
    mg_frames_free(&f);
}

static int decode_with(const mg_signer *s, mg_replay *r, const char *const parts[4],
                       const char *sig_override, char **err)
{
    mg_frames f = {0};
    mg_wire_encode(s, NULL, 0, parts[0], parts[1], parts[2], parts[3], &f);
    if (sig_override) {
        free(f.v[1].data);
        f.v[1].len = strlen(sig_override);
        f.v[1].data = (unsigned char *)strdup(sig_override);
    }
    mg_msg m;
    int rc = mg_wire_decode(&f, s, r, &m, err);
    if (rc == 0)
        mg_msg_free(&m);
    mg_frames_free(&f);
    return rc;
}

void test_wire_decode_errors(void)
{
    mg_signer s;
    mg_signer_init(&s, "key", 3);
    char *err = NULL;
    const char *ok[4] = {HDR, "{}", "{}", "{}"};
    CHECK_INT(decode_with(&s, NULL, ok, NULL, &err), 0);

    CHECK_INT(decode_with(&s, NULL, ok, "", &err), -1);
    CHECK_HAS(err, "missing signature");
    free(err);
    CHECK_INT(decode_with(&s, NULL, ok,
                          "0000000000000000000000000000000000000000000000000000000000000000", &err),
              -1);
    CHECK_HAS(err, "bad signature");
    free(err);

    const char *garbage[4] = {"{not json", "{}", "{}", "{}"};
    CHECK_INT(decode_with(&s, NULL, garbage, NULL, &err), -1);
    CHECK_HAS(err, "malformed JSON in header");
    free(err);
    const char *trailing[4] = {HDR, "{}", "{} x", "{}"};
    CHECK_INT(decode_with(&s, NULL, trailing, NULL, &err), -1);
    CHECK_HAS(err, "metadata");
    free(err);
    const char *array[4] = {HDR, "{}", "{}", "[1]"};
    CHECK_INT(decode_with(&s, NULL, array, NULL, &err), -1);
    CHECK_HAS(err, "content");
    free(err);
    const char *notype[4] = {"{\"msg_id\":\"x\"}", "{}", "{}", "{}"};
    CHECK_INT(decode_with(&s, NULL, notype, NULL, &err), -1);
    CHECK_HAS(err, "msg_type");
    free(err);
    const char *empty[4] = {"", "{}", "{}", "{}"};
    CHECK_INT(decode_with(&s, NULL, empty, NULL, &err), -1);
    free(err);
    mg_signer_free(&s);

    /* Without a key the signature frame is ignored. */
    mg_signer none;
    mg_signer_init(&none, "", 0);
    CHECK_INT(decode_with(&none, NULL, ok, "anything", &err), 0);
    mg_signer_free(&none);
}

void test_wire_replay(void)
{
    mg_signer s;
    mg_signer_init(&s, "key", 3);
    mg_replay r;
    mg_replay_init(&r, 64);
    mg_frames f = {0};
    mg_wire_encode(&s, NULL, 0, HDR, "{}", "{}", "{}", &f);
    mg_msg m;
    char *err = NULL;
    CHECK_INT(mg_wire_decode(&f, &s, &r, &m, &err), 0);
    mg_msg_free(&m);
    CHECK_INT(mg_wire_decode(&f, &s, &r, &m, &err), -1); /* the same frames again */
    CHECK_HAS(err, "replayed");
    free(err);
    mg_frames_free(&f);
    /* A different message is fine. */
    mg_wire_encode(&s, NULL, 0, HDR, "{}", "{}", "{\"n\":2}", &f);
    CHECK_INT(mg_wire_decode(&f, &s, &r, &m, &err), 0);
    mg_msg_free(&m);
    mg_frames_free(&f);
    mg_replay_free(&r);
    mg_signer_free(&s);
}

void test_replay_bounded(void)
{
    mg_replay r;
    mg_replay_init(&r, 100);
    unsigned char d[32];
    size_t cap = r.cap;
    for (unsigned i = 0; i < 1000; i++) {
        memset(d, 0, sizeof d);
        memcpy(d, &i, sizeof i);
        d[31] = 7;
        CHECK(!mg_replay_check_add(&r, d));
        /* The last 100 are always remembered. */
        for (unsigned j = i >= 99 ? i - 99 : 0; j <= i; j += 33) {
            memset(d, 0, sizeof d);
            memcpy(d, &j, sizeof j);
            d[31] = 7;
            CHECK(mg_replay_check_add(&r, d));
        }
    }
    CHECK_INT(r.cap, cap); /* memory did not grow */
    memset(d, 0, sizeof d);
    d[31] = 7; /* i == 0, long forgotten */
    CHECK(!mg_replay_check_add(&r, d));
    mg_replay_free(&r);
}

void test_conn_parse(void)
{
    mg_conn c;
    char *err = NULL;
    CHECK_INT(mg_conn_parse("{\"shell_port\": 1, \"iopub_port\": 2, \"stdin_port\": 3, "
                            "\"control_port\": 4, \"hb_port\": 5, \"ip\": \"127.0.0.1\", "
                            "\"key\": \"abc\", \"transport\": \"tcp\", "
                            "\"signature_scheme\": \"hmac-sha256\", \"kernel_name\": \"actmax\"}",
                            &c, &err),
              0);
    CHECK_INT(c.control_port, 4);
    CHECK_STR(c.key, "abc");
    char *ep = mg_conn_endpoint(&c, c.hb_port);
    CHECK_STR(ep, "tcp://127.0.0.1:5");
    free(ep);
    mg_conn_free(&c);

    CHECK_INT(mg_conn_parse("{\"shell_port\": 1}", &c, &err), -1);
    CHECK_HAS(err, "iopub_port");
    free(err);
    CHECK_INT(mg_conn_parse("{\"shell_port\": 1, \"iopub_port\": 2, \"stdin_port\": 3, "
                            "\"control_port\": 4, \"hb_port\": 5, \"key\": \"k\", "
                            "\"signature_scheme\": \"hmac-md5\"}",
                            &c, &err),
              -1);
    CHECK_HAS(err, "hmac-md5");
    free(err);
    CHECK_INT(mg_conn_parse("[]", &c, &err), -1);
    free(err);
}
