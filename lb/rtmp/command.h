/* RTMP commands the front door reads and the replies it writes. Pure. */
#ifndef LB_RTMP_COMMAND_H
#define LB_RTMP_COMMAND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lb/rtmp/amf.h"

enum rtmp_cmd_kind {
    RTMP_CMD_OTHER,
    RTMP_CMD_CONNECT,
    RTMP_CMD_CREATE_STREAM,
    RTMP_CMD_PUBLISH,
    RTMP_CMD_PLAY,
};

#define RTMP_NAME_MAX 256

/* Enhanced RTMP (E-RTMP v2, "Enhancing NetConnection connect Command"): what
 * a client's connect lists. FourCCs are 4 bytes, or the wildcard "*";
 * other entries are skipped, and at most RTMP_FOURCC_MAX of each are kept
 * (the spec defines 11 codecs). */
#define RTMP_FOURCC_MAX 16
#define RTMP_CAPS_EX_KNOWN 0x0fu /* Reconnect, Multitrack, ModEx, TimestampNanoOffset */
#define RTMP_FOURCC_CAN_FORWARD 0x04
struct rtmp_fourccs {
    bool present; /* the property was there (even if empty) */
    uint8_t n;
    char cc[RTMP_FOURCC_MAX][5];
};
struct rtmp_caps {
    struct rtmp_fourccs list;  /* fourCcList (AMF0 strict array of strings) */
    struct rtmp_fourccs video; /* videoFourCcInfoMap's keys (object or ECMA array) */
    struct rtmp_fourccs audio; /* audioFourCcInfoMap's keys */
    bool has_caps_ex;
    uint32_t caps_ex; /* capsEx, as sent */
};

struct rtmp_cmd {
    enum rtmp_cmd_kind kind;
    double tid;
    char app[RTMP_NAME_MAX];    /* connect: normalised app */
    char tc_url[RTMP_NAME_MAX]; /* connect: as sent */
    char stream[RTMP_NAME_MAX]; /* publish/play: normalised name */
    /* The raw queries (after '?', "" if none) that normalising dropped:
     * connect: the tcUrl's (else the app's); publish/play: the stream's. */
    char tc_args[RTMP_NAME_MAX];
    char stream_args[RTMP_NAME_MAX];
    int object_encoding;        /* connect: 0 (AMF0) or 3 (AMF3) */
    struct rtmp_caps caps;      /* connect: E-RTMP capabilities */
};

/* True when the connect listed any E-RTMP capability. */
bool rtmp_caps_any(const struct rtmp_caps *c);

/* One "key=value" of a query; both point into the split buffer. */
struct rtmp_arg {
    const char *key;
    const char *value;
};

/* Splits a raw query ("a=1&line=hk&flag") in place into at most cap args,
 * percent-decoding keys and values ("flag" alone: value ""). Empty keys and
 * args past cap are dropped. Returns how many were written. */
size_t rtmp_args_split(char *query, struct rtmp_arg *out, size_t cap);

/* Reads a command message body (type 20, or 17 with amf3). Returns 0, or -1
 * with *why set (malformed AMF, or a name/app too long). */
int rtmp_cmd_parse(const uint8_t *body, size_t len, bool amf3, const struct amf_limits *lim,
                   struct rtmp_cmd *out, const char **why);

/* Normalise like nginx-rtmp: drop "?args", trailing '/', a "/_definst_"
 * suffix (apps). In place. */
void rtmp_normalise_app(char *app);
void rtmp_normalise_stream(char *stream);
/* The app from a tcUrl "rtmp://host[:port]/app[/inst][?args]" when connect
 * carried none. */
void rtmp_app_from_tcurl(const char *tc_url, char *app, size_t cap);

/* Replies as complete one-chunk messages (header + body). Each returns the
 * bytes written to out, 0 if cap is too small.
 *
 * connect: with caps (non-NULL and listing something), the _result's
 * properties object also carries, per E-RTMP v2, what a forwarding server
 * can promise: the client's fourCcList as sent, its [video|audio]FourCcInfoMap
 * keys each with CanForward, and its capsEx limited to the known bits. That
 * _result may then exceed 128 bytes: it is chunked at 128, the client's
 * read chunk size until the origin's Set Chunk Size, which comes later. */
#define RTMP_REPLY_CONNECT_MAX 2048
size_t rtmp_reply_connect(uint8_t *out, size_t cap, double tid, int object_encoding,
                          const struct rtmp_caps *caps);
size_t rtmp_reply_create_stream(uint8_t *out, size_t cap, double tid, double stream_id);
/* Error replies, chunked at the client's current chunk size; descriptions
 * longer than RTMP_DESC_MAX are cut. _error to connect:
 * NetConnection.Connect.Rejected. onStatus: level error, on msid 1, csid 5. */
#define RTMP_DESC_MAX 200
size_t rtmp_reply_connect_rejected(uint8_t *out, size_t cap, double tid, const char *desc,
                                   uint32_t chunk_size);
size_t rtmp_reply_status_error(uint8_t *out, size_t cap, const char *code, const char *desc,
                               uint32_t chunk_size);

/* For the upstream side: a command's name and transaction id from the first
 * bytes of its body (amf3: type 17, skip the format byte). Returns the byte
 * offset of the 8-byte tid within body, or -1 if the peek is too short or
 * not a command. */
long rtmp_peek_name_tid(const uint8_t *body, size_t len, bool amf3, char *name, size_t name_cap,
                        double *tid);

#endif
