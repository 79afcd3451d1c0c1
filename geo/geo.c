/* MaxMind database handle: open, fault in, lookups, country centroids. */
#include "geo/geo.h"

#include <maxminddb.h>
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define N_CC (26 * 26)

struct centroid {
    double x, y, z; /* sum of unit vectors: longitudes wrap correctly */
    uint32_t n;
};

struct geo_db {
    _Atomic unsigned refs;
    MMDB_s mmdb;
    char *path;
    struct centroid cc[N_CC];
};

static int cc_index(const char *cc)
{
    if (!cc || cc[0] < 'A' || cc[0] > 'Z' || cc[1] < 'A' || cc[1] > 'Z' || cc[2])
        return -1;
    return (cc[0] - 'A') * 26 + (cc[1] - 'A');
}

static bool get_string(MMDB_entry_s *e, char *out, size_t cap, const char *a, const char *b)
{
    MMDB_entry_data_s d;
    if (MMDB_get_value(e, &d, a, b, NULL) != MMDB_SUCCESS || !d.has_data ||
        d.type != MMDB_DATA_TYPE_UTF8_STRING || d.data_size >= cap)
        return false;
    memcpy(out, d.utf8_string, d.data_size);
    out[d.data_size] = '\0';
    return true;
}

static bool get_double(MMDB_entry_s *e, double *out, const char *a, const char *b)
{
    MMDB_entry_data_s d;
    if (MMDB_get_value(e, &d, a, b, NULL) != MMDB_SUCCESS || !d.has_data)
        return false;
    if (d.type == MMDB_DATA_TYPE_DOUBLE)
        *out = d.double_value;
    else if (d.type == MMDB_DATA_TYPE_FLOAT)
        *out = d.float_value;
    else
        return false;
    return true;
}

static void read_entry(MMDB_entry_s *e, struct geo_info *info)
{
    MMDB_entry_data_s d;
    memset(info, 0, sizeof(*info));
    info->found = true;
    if (!get_string(e, info->country, sizeof(info->country), "country", "iso_code"))
        get_string(e, info->country, sizeof(info->country), "registered_country", "iso_code");
    get_string(e, info->continent, sizeof(info->continent), "continent", "code");
    info->has_location = get_double(e, &info->lat, "location", "latitude") &&
                         get_double(e, &info->lon, "location", "longitude");
    if (MMDB_get_value(e, &d, "autonomous_system_number", NULL) == MMDB_SUCCESS && d.has_data &&
        d.type == MMDB_DATA_TYPE_UINT32)
        info->asn = d.uint32;
}

/* Walks the search tree once, adding every located network to its country's
 * sum. Each node is visited once (IPv4 aliases point into one subtree). */
static void compute_centroids(struct geo_db *db)
{
    uint32_t nodes = db->mmdb.metadata.node_count;
    uint8_t *seen = calloc(nodes / 8 + 1, 1);
    uint32_t *stack = malloc(sizeof(uint32_t) * 256);
    size_t top = 0;
    if (!seen || !stack)
        goto out;
    stack[top++] = 0;
    while (top) {
        uint32_t n = stack[--top];
        if (n >= nodes || (seen[n / 8] >> (n % 8) & 1))
            continue;
        seen[n / 8] |= (uint8_t)(1u << (n % 8));
        MMDB_search_node_s node;
        if (MMDB_read_node(&db->mmdb, n, &node) != MMDB_SUCCESS)
            continue;
        for (int side = 0; side < 2; side++) {
            uint8_t type = side ? node.right_record_type : node.left_record_type;
            uint64_t rec = side ? node.right_record : node.left_record;
            if (type == MMDB_RECORD_TYPE_SEARCH_NODE) {
                if (top < 256)
                    stack[top++] = (uint32_t)rec;
            } else if (type == MMDB_RECORD_TYPE_DATA) {
                MMDB_entry_s e = side ? node.right_record_entry : node.left_record_entry;
                struct geo_info info;
                read_entry(&e, &info);
                int i = cc_index(info.country);
                if (i >= 0 && info.has_location) {
                    double la = info.lat * M_PI / 180, lo = info.lon * M_PI / 180;
                    db->cc[i].x += cos(la) * cos(lo);
                    db->cc[i].y += cos(la) * sin(lo);
                    db->cc[i].z += sin(la);
                    db->cc[i].n++;
                }
            }
        }
    }
out:
    free(seen);
    free(stack);
}

struct geo_db *geo_open(const char *path, char *err, size_t errlen)
{
    struct geo_db *db = calloc(1, sizeof(*db));
    if (!db) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    int rc = MMDB_open(path, MMDB_MODE_MMAP, &db->mmdb);
    if (rc != MMDB_SUCCESS) {
        snprintf(err, errlen, "cannot open %s: %s", path, MMDB_strerror(rc));
        free(db);
        return NULL;
    }
    /* Fault every page in now, on the control thread, so that a lookup on
     * a worker never waits for the disk. */
    volatile uint8_t sink = 0;
    for (size_t off = 0; off < (size_t)db->mmdb.file_size; off += 4096)
        sink ^= db->mmdb.file_content[off];
    (void)sink;
    db->path = strdup(path);
    atomic_init(&db->refs, 1);
    compute_centroids(db);
    return db;
}

struct geo_db *geo_ref(struct geo_db *db)
{
    if (db)
        atomic_fetch_add(&db->refs, 1);
    return db;
}

void geo_unref(struct geo_db *db)
{
    if (db && atomic_fetch_sub(&db->refs, 1) == 1) {
        MMDB_close(&db->mmdb);
        free(db->path);
        free(db);
    }
}

const char *geo_path(const struct geo_db *db) { return db->path; }

bool geo_lookup(const struct geo_db *db, const struct sockaddr *sa, struct geo_info *info)
{
    int mmdb_err;
    memset(info, 0, sizeof(*info));
    if (!db)
        return false;
    MMDB_lookup_result_s r = MMDB_lookup_sockaddr((MMDB_s *)&db->mmdb, sa, &mmdb_err);
    if (mmdb_err != MMDB_SUCCESS || !r.found_entry)
        return false;
    read_entry(&r.entry, info);
    return true;
}

bool geo_country_centroid(const struct geo_db *db, const char *cc, double *lat, double *lon)
{
    char up[3];
    if (!db || !cc || strlen(cc) != 2)
        return false;
    up[0] = (char)(cc[0] & ~0x20);
    up[1] = (char)(cc[1] & ~0x20);
    up[2] = '\0';
    int i = cc_index(up);
    if (i < 0 || db->cc[i].n == 0)
        return false;
    const struct centroid *c = &db->cc[i];
    *lat = atan2(c->z, sqrt(c->x * c->x + c->y * c->y)) * 180 / M_PI;
    *lon = atan2(c->y, c->x) * 180 / M_PI;
    return true;
}

double geo_distance_km(double lat1, double lon1, double lat2, double lon2)
{
    double p1 = lat1 * M_PI / 180, p2 = lat2 * M_PI / 180;
    double dp = p2 - p1, dl = (lon2 - lon1) * M_PI / 180;
    double a = sin(dp / 2) * sin(dp / 2) + cos(p1) * cos(p2) * sin(dl / 2) * sin(dl / 2);
    return 6371.0 * 2 * atan2(sqrt(a), sqrt(1 - a));
}
