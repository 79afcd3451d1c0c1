/* MaxMind lookups: country, continent, coordinates, ASN. A database is
 * opened (and its pages faulted in) on the control thread; workers only
 * read it, which libmaxminddb allows from any thread without locks. */
#ifndef GEO_GEO_H
#define GEO_GEO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

struct geo_db;

struct geo_info {
    bool found;
    char country[4];   /* ISO 3166 alpha-2, "" if unknown */
    char continent[4]; /* AF AN AS EU NA OC SA, "" if unknown */
    bool has_location;
    double lat, lon;
    uint32_t asn; /* 0 if unknown */
};

/* Opens path; NULL with a message in err (missing, unreadable, corrupt). */
struct geo_db *geo_open(const char *path, char *err, size_t errlen);
struct geo_db *geo_ref(struct geo_db *db);
void geo_unref(struct geo_db *db);
const char *geo_path(const struct geo_db *db);

/* Thread-safe. Returns info->found. */
bool geo_lookup(const struct geo_db *db, const struct sockaddr *sa, struct geo_info *info);
/* The mean position of the database's networks in a country (computed at
 * open). False if the database has no located network there. */
bool geo_country_centroid(const struct geo_db *db, const char *cc, double *lat, double *lon);
/* Great-circle distance in km (haversine). */
double geo_distance_km(double lat1, double lon1, double lat2, double lon2);

#endif
