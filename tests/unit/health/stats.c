/* Stats documents are untrusted input: the entity-amplification document
 * is refused at its DOCTYPE for a bounded cost, JSON nested 10000 deep is
 * refused at the depth cap, a document truncated at any offset is refused
 * with a reason (never half-read), a document over the size cap is refused,
 * and a stream whose name does not fit is skipped and counted, never cut. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "health/streams.h"

static const char *dir;

static char *slurp(const char *name, size_t *len)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    assert_non_null(buf);
    *len = fread(buf, 1, (size_t)n, f);
    buf[*len] = '\0';
    fclose(f);
    return buf;
}

static long maxrss_kib(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The amplification document an audit found (206 KB, 403 MB allocated and
 * seconds of the control thread per poll, as expanded by
 * xmlNodeGetContent): one entity of 100 references to 100 bytes, referenced
 * 100 times in each of 500 stream names, 222 KB in all. libxml2's own
 * amplification check passes it; each name is 1 MB once expanded. */
static char *amplification_doc(size_t *len)
{
    size_t cap = 300000, n = 0;
    char *d = malloc(cap);
    assert_non_null(d);
    n += (size_t)snprintf(d + n, cap - n, "<?xml version=\"1.0\"?>\n<!DOCTYPE rtmp [\n"
                                          "<!ENTITY e0 \"%0100d\">\n<!ENTITY e1 \"", 0);
    for (int i = 0; i < 100; i++)
        n += (size_t)snprintf(d + n, cap - n, "&e0;");
    n += (size_t)snprintf(d + n, cap - n, "\">\n]>\n<rtmp><server><application><name>live"
                                          "</name><live>");
    for (int s = 0; s < 500; s++) {
        n += (size_t)snprintf(d + n, cap - n, "<stream><name>");
        for (int i = 0; i < 100; i++)
            n += (size_t)snprintf(d + n, cap - n, "&e1;");
        n += (size_t)snprintf(d + n, cap - n, "</name><publishing/></stream>");
    }
    n += (size_t)snprintf(d + n, cap - n, "</live></application></server></rtmp>\n");
    assert_true(n < cap);
    *len = n;
    return d;
}

/* Runs first: ru_maxrss is a high-water mark. */
static void test_entity_amplification_refused(void **st)
{
    size_t len;
    char *doc = amplification_doc(&len);
    struct hc_stream *s = calloc(4096, sizeof(*s));
    struct hc_stats_report rep;
    (void)st;
    assert_non_null(s);
    long before = maxrss_kib();
    double t0 = now_s();
    for (int i = 0; i < 5; i++) /* five polls */
        assert_int_equal(hc_parse_nginx_stat(doc, len, s, 4096, &rep), -1);
    double took = now_s() - t0;
    long grew = maxrss_kib() - before;
    printf("# amplification document (%zu bytes) x5: %.3f s, max RSS +%ld KiB: %s\n", len, took,
           grew, rep.error);
    assert_non_null(strstr(rep.error, "DOCTYPE"));
    assert_true(grew < 16 * 1024);
    assert_true(took < 1.0); /* the expansion took seconds per poll */
    free(s);
    free(doc);
}

static void test_doctype_and_external_entities_refused(void **st)
{
    struct hc_stream s[4];
    struct hc_stats_report rep;
    (void)st;
    /* An external entity (would read a file) and an external DTD (would
     * fetch from the network): both stop at the DOCTYPE. */
    const char *ext = "<?xml version=\"1.0\"?><!DOCTYPE rtmp [<!ENTITY x SYSTEM "
                      "\"file:///etc/passwd\">]><rtmp><server><application><name>&x;</name>"
                      "</application></server></rtmp>";
    assert_int_equal(hc_parse_nginx_stat(ext, strlen(ext), s, 4, &rep), -1);
    assert_non_null(strstr(rep.error, "DOCTYPE"));
    const char *dtd = "<!DOCTYPE rtmp SYSTEM \"http://127.0.0.1:1/x.dtd\"><rtmp/>";
    assert_int_equal(hc_parse_nginx_stat(dtd, strlen(dtd), s, 4, &rep), -1);
    assert_non_null(strstr(rep.error, "DOCTYPE"));
    /* An undeclared entity is a well-formedness error, with a reason. */
    const char *undecl = "<rtmp><server>&x;</server></rtmp>";
    assert_int_equal(hc_parse_nginx_stat(undecl, strlen(undecl), s, 4, &rep), -1);
    assert_non_null(strstr(rep.error, "XML line 1"));
    /* Character references and the predefined entities still work. */
    const char *ok = "<rtmp><server><application><name>l&amp;v&#101;</name><live><stream>"
                     "<name>a&lt;b</name><publishing/></stream></live></application></server>"
                     "</rtmp>";
    assert_int_equal(hc_parse_nginx_stat(ok, strlen(ok), s, 4, &rep), 1);
    assert_string_equal(s[0].app, "l&ve");
    assert_string_equal(s[0].name, "a<b");
}

static void test_json_10000_deep_refused(void **st)
{
    struct hc_stream s[4];
    struct hc_stats_report rep;
    (void)st;
    size_t depth = 10000, len = 0;
    char *doc = malloc(depth * 6 + 64);
    assert_non_null(doc);
    len += (size_t)sprintf(doc, "{\"code\":0,\"streams\":[");
    for (size_t i = 0; i < depth; i++)
        len += (size_t)sprintf(doc + len, "{\"a\":");
    doc[len++] = '1';
    for (size_t i = 0; i < depth; i++)
        doc[len++] = '}';
    len += (size_t)sprintf(doc + len, "]}");
    long before = maxrss_kib();
    assert_int_equal(hc_parse_srs_streams(doc, len, s, 4, &rep), -1);
    assert_non_null(strstr(rep.error, "deeper"));
    /* Arrays too. */
    len = (size_t)sprintf(doc, "{\"streams\":");
    memset(doc + len, '[', depth);
    memset(doc + len + depth, ']', depth);
    len += 2 * depth;
    doc[len++] = '}';
    assert_int_equal(hc_parse_srs_streams(doc, len, s, 4, &rep), -1);
    assert_non_null(strstr(rep.error, "deeper"));
    assert_true(maxrss_kib() - before < 8 * 1024);
    /* Depth within the cap is fine. */
    const char *ok = "{\"code\":0,\"streams\":[{\"app\":\"live\",\"name\":\"a\",\"x\":[[[[1]]]],"
                     "\"publish\":{\"active\":true}}]}";
    assert_int_equal(hc_parse_srs_streams(ok, strlen(ok), s, 4, &rep), 1);
    free(doc);
}

/* Every proper prefix of a good document (but trailing blanks) is refused
 * with a reason; each prefix in a buffer of its own size, so a read past
 * it is caught by the sanitizers. */
static void truncated_everywhere(const char *name, bool json)
{
    size_t len;
    char *doc = slurp(name, &len);
    struct hc_stream s[16];
    struct hc_stats_report rep;
    size_t whole = len;
    while (whole > 0 && strchr(" \r\n\t", doc[whole - 1]))
        whole--;
    int full = json ? hc_parse_srs_streams(doc, len, s, 16, &rep)
                    : hc_parse_nginx_stat(doc, len, s, 16, &rep);
    assert_int_equal(full, 2);
    for (size_t k = 0; k < whole; k++) {
        char *cut = malloc(k ? k : 1);
        assert_non_null(cut);
        memcpy(cut, doc, k);
        int n = json ? hc_parse_srs_streams(cut, k, s, 16, &rep)
                     : hc_parse_nginx_stat(cut, k, s, 16, &rep);
        if (n != -1)
            fail_msg("%s cut at %zu of %zu: %d streams, not refused", name, k, len, n);
        assert_true(rep.error[0] != '\0');
        free(cut);
    }
    free(doc);
}

static void test_truncated_at_every_offset(void **st)
{
    (void)st;
    truncated_everywhere("nginx-stat.xml", false);
    truncated_everywhere("srs-streams.json", true);
}

static void test_oversized_refused(void **st)
{
    struct hc_stream s[4];
    struct hc_stats_report rep;
    (void)st;
    size_t len = HC_STATS_DOC_MAX + 1;
    char *doc = malloc(len);
    assert_non_null(doc);
    memset(doc, ' ', len);
    memcpy(doc, "<rtmp>", 6);
    memcpy(doc + len - 7, "</rtmp>", 7);
    assert_int_equal(hc_parse_nginx_stat(doc, len, s, 4, &rep), -1);
    assert_non_null(strstr(rep.error, "document over"));
    memcpy(doc, "{\"streams\":[]", 13);
    doc[len - 1] = '}';
    assert_int_equal(hc_parse_srs_streams(doc, len, s, 4, &rep), -1);
    assert_non_null(strstr(rep.error, "document over"));
    /* Trailing bytes after a JSON document are not ignored. */
    const char *tail = "{\"streams\":[]} {\"streams\":[]}";
    assert_int_equal(hc_parse_srs_streams(tail, strlen(tail), s, 4, &rep), -1);
    assert_non_null(strstr(rep.error, "after the document"));
    free(doc);
}

static void test_long_names_skipped_and_counted(void **st)
{
    struct hc_stream s[4];
    struct hc_stats_report rep;
    char longname[300], doc[4096];
    (void)st;
    memset(longname, 'n', sizeof(longname) - 1);
    longname[sizeof(longname) - 1] = '\0';
    snprintf(doc, sizeof(doc),
             "<rtmp><server><application><name>live</name><live>"
             "<stream><name>%s</name><publishing/></stream>"
             "<stream><name>ok</name><publishing/></stream>"
             "<stream><name>%.255s</name><publishing/></stream>"
             "</live></application></server></rtmp>",
             longname, longname);
    assert_int_equal(hc_parse_nginx_stat(doc, strlen(doc), s, 4, &rep), 2);
    assert_string_equal(s[0].name, "ok");
    assert_int_equal(strlen(s[1].name), 255); /* the longest that fits */
    assert_int_equal(rep.long_names, 1);
    /* An application name that does not fit: all its streams. */
    snprintf(doc, sizeof(doc),
             "<rtmp><server><application><name>%.200s</name><live>"
             "<stream><name>a</name></stream><stream><name>b</name></stream>"
             "</live></application></server></rtmp>",
             longname);
    assert_int_equal(hc_parse_nginx_stat(doc, strlen(doc), s, 4, &rep), 0);
    assert_int_equal(rep.long_names, 2);

    snprintf(doc, sizeof(doc),
             "{\"code\":0,\"streams\":[{\"app\":\"live\",\"name\":\"%s\"},"
             "{\"app\":\"live\",\"name\":\"ok\"},{\"app\":\"%.128s\",\"name\":\"x\"}]}",
             longname, longname);
    assert_int_equal(hc_parse_srs_streams(doc, strlen(doc), s, 4, &rep), 1);
    assert_string_equal(s[0].name, "ok");
    assert_int_equal(rep.long_names, 2);
    /* Streams beyond the caller's cap are counted too. */
    const char *three = "{\"streams\":[{\"name\":\"a\"},{\"name\":\"b\"},{\"name\":\"c\"}]}";
    assert_int_equal(hc_parse_srs_streams(three, strlen(three), s, 2, &rep), 2);
    assert_int_equal(rep.over_cap, 1);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s DIR-WITH-STATS-DOCUMENTS\n", argv[0]);
        return 2;
    }
    dir = argv[1];
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_entity_amplification_refused),
        cmocka_unit_test(test_doctype_and_external_entities_refused),
        cmocka_unit_test(test_json_10000_deep_refused),
        cmocka_unit_test(test_truncated_at_every_offset),
        cmocka_unit_test(test_oversized_refused),
        cmocka_unit_test(test_long_names_skipped_and_counted),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
