/*
 * mhd.c - libmicrohttpd, loaded when the HTTP side starts, not when mailout
 * starts.
 *
 * Why: Debian's libmicrohttpd brings GnuTLS and its helpers (p11-kit, nettle,
 * gmp, tasn1), which cost every process a few megabytes and some start-up
 * time. Only `mailout serve` needs HTTP; `mailout send`, `sendmail` and the
 * rest should not pay for it. So the program is not linked against the
 * library: the few entry points the admin module uses are defined here with
 * the library's own prototypes (from <microhttpd.h>) and forward to the
 * library opened with dlopen() by admin_mhd_load().
 * Leaves out: every libmicrohttpd function the module does not call.
 */
#include <dlfcn.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdarg.h>
#include <stddef.h>

#include "admin/admin_internal.h"

/* Debian 12 ships libmicrohttpd.so.12; the unversioned name needs the -dev package. */
static const char *const mhd_names[] = {"libmicrohttpd.so.12", "libmicrohttpd.so"};

static struct {
    struct MHD_Daemon *(*start_daemon_va)(unsigned int, uint16_t, MHD_AcceptPolicyCallback,
                                          void *, MHD_AccessHandlerCallback, void *, va_list);
    void (*stop_daemon)(struct MHD_Daemon *);
    struct MHD_Response *(*create_response_from_buffer)(size_t, void *,
                                                        enum MHD_ResponseMemoryMode);
    enum MHD_Result (*add_response_header)(struct MHD_Response *, const char *, const char *);
    enum MHD_Result (*queue_response)(struct MHD_Connection *, unsigned int,
                                      struct MHD_Response *);
    void (*destroy_response)(struct MHD_Response *);
    const char *(*lookup_connection_value)(struct MHD_Connection *, enum MHD_ValueKind,
                                           const char *);
    int (*get_connection_values)(struct MHD_Connection *, enum MHD_ValueKind,
                                 MHD_KeyValueIterator, void *);
    const union MHD_ConnectionInfo *(*get_connection_info)(struct MHD_Connection *,
                                                           enum MHD_ConnectionInfoType, ...);
} mhd;

static pthread_once_t mhd_once = PTHREAD_ONCE_INIT;
static int mhd_loaded; /* 1 ok, -1 failed */
static char mhd_why[256];

#define MHD_RESOLVE(lib, field, name)                                                              \
    (*(void **)(&mhd.field) = dlsym((lib), (name))) != NULL

static void
mhd_load_once(void)
{
    void *lib = NULL;

    for (size_t i = 0; lib == NULL && i < sizeof(mhd_names) / sizeof(mhd_names[0]); i++)
        lib = dlopen(mhd_names[i], RTLD_NOW | RTLD_LOCAL);
    if (lib == NULL) {
        const char *e = dlerror();
        snprintf(mhd_why, sizeof(mhd_why), "%s", e != NULL ? e : "not found");
        mhd_loaded = -1;
        return;
    }
    if (MHD_RESOLVE(lib, start_daemon_va, "MHD_start_daemon_va") &&
        MHD_RESOLVE(lib, stop_daemon, "MHD_stop_daemon") &&
        MHD_RESOLVE(lib, create_response_from_buffer, "MHD_create_response_from_buffer") &&
        MHD_RESOLVE(lib, add_response_header, "MHD_add_response_header") &&
        MHD_RESOLVE(lib, queue_response, "MHD_queue_response") &&
        MHD_RESOLVE(lib, destroy_response, "MHD_destroy_response") &&
        MHD_RESOLVE(lib, lookup_connection_value, "MHD_lookup_connection_value") &&
        MHD_RESOLVE(lib, get_connection_values, "MHD_get_connection_values") &&
        MHD_RESOLVE(lib, get_connection_info, "MHD_get_connection_info")) {
        mhd_loaded = 1;
        return;
    }
    snprintf(mhd_why, sizeof(mhd_why), "a function is missing from libmicrohttpd");
    mhd_loaded = -1;
}

int
admin_mhd_load(struct mo_error *err)
{
    pthread_once(&mhd_once, mhd_load_once);
    if (mhd_loaded == 1)
        return 0;
    mo_error_set(err, MO_ERR_INTERNAL, "http",
                 "cannot load libmicrohttpd (%s); install the libmicrohttpd12 package", mhd_why);
    return -1;
}

/* ---- the library's entry points, forwarded (only called after admin_mhd_load) ---- */

struct MHD_Daemon *
MHD_start_daemon(unsigned int flags, uint16_t port, MHD_AcceptPolicyCallback apc, void *apc_cls,
                 MHD_AccessHandlerCallback dh, void *dh_cls, ...)
{
    struct MHD_Daemon *d;
    va_list ap;

    if (admin_mhd_load(NULL) != 0)
        return NULL;
    va_start(ap, dh_cls);
    d = mhd.start_daemon_va(flags, port, apc, apc_cls, dh, dh_cls, ap);
    va_end(ap);
    return d;
}

void
MHD_stop_daemon(struct MHD_Daemon *daemon)
{
    mhd.stop_daemon(daemon);
}

struct MHD_Response *
MHD_create_response_from_buffer(size_t size, void *buffer, enum MHD_ResponseMemoryMode mode)
{
    return mhd.create_response_from_buffer(size, buffer, mode);
}

enum MHD_Result
MHD_add_response_header(struct MHD_Response *response, const char *header, const char *content)
{
    return mhd.add_response_header(response, header, content);
}

enum MHD_Result
MHD_queue_response(struct MHD_Connection *connection, unsigned int status_code,
                   struct MHD_Response *response)
{
    return mhd.queue_response(connection, status_code, response);
}

void
MHD_destroy_response(struct MHD_Response *response)
{
    mhd.destroy_response(response);
}

const char *
MHD_lookup_connection_value(struct MHD_Connection *connection, enum MHD_ValueKind kind,
                            const char *key)
{
    return mhd.lookup_connection_value(connection, kind, key);
}

int
MHD_get_connection_values(struct MHD_Connection *connection, enum MHD_ValueKind kind,
                          MHD_KeyValueIterator iterator, void *iterator_cls)
{
    return mhd.get_connection_values(connection, kind, iterator, iterator_cls);
}

const union MHD_ConnectionInfo *
MHD_get_connection_info(struct MHD_Connection *connection, enum MHD_ConnectionInfoType info_type,
                        ...)
{
    /* The module asks only for CLIENT_ADDRESS and PROTOCOL/CONNECTION_FD-style infos, which
     * take no extra argument. */
    return mhd.get_connection_info(connection, info_type);
}
