/*
 * sendmail.h - private to src/cli: sendmail mode's pure parts (the command
 * line, the end of the input), kept apart so that unit tests and fuzzers can
 * call them, and the queue-or-spool decision that `mailout send` shares.
 */
#ifndef MAILOUT_CLI_SENDMAIL_H
#define MAILOUT_CLI_SENDMAIL_H

#include <stdbool.h>
#include <stddef.h>
#include <sysexits.h>

#include "common/common.h"

#define SENDMAIL_MAX_BYTES_DEFAULT (50L * 1024 * 1024)

/* What a sendmail command line asked for. Strings are borrowed from argv. */
struct sendmail_args {
    bool extract_recipients; /* -t: To, Cc and Bcc of the message */
    bool ignore_dots;        /* -i, -oi: a line with a single "." does not end the input */
    bool verbose;            /* -v: say on stderr where the message went */
    bool help;               /* --help */
    const char *from;        /* -f FROM, -r FROM; NULL when not given */
    const char *full_name;   /* -F NAME; NULL when not given */
    long max_bytes;          /* -O MaxMessageSize=N; 0 when not given */
    const char **rcpts;      /* the operands: n_rcpts recipients; the array is owned
                                (sendmail_args_clear), the strings are argv's */
    size_t n_rcpts;
};

/*
 * Parses a sendmail command line (argv[0] is the program or "sendmail" and
 * is skipped) the way sendmail and Postfix's sendmail do: single-letter
 * options, clustered ("-ti") or not, values attached ("-fme@x") or in the
 * next argument, options and recipients in any order until "--".
 * Accepted: -t, -i, -oi; -f/-r FROM; -F NAME; -O MaxMessageSize=N;
 * ignored as other sendmails do: -v (noted), -m, -n, -U, -G, -Ac/-Am, -bm,
 * -B TYPE, -C FILE, -h N, -L TAG, -N DSN, -R RET, -V ENVID, -X LOG, -O
 * OPTION=VALUE, -oX... (-oem, -odb, -oQ/dir, ...).
 * Returns 0 with *out filled, or an exit status with a one-line reason in
 * why: EX_USAGE for an unknown option, a missing value, or a mode mailout
 * does not have (-bs, -bd, -bp, -bi, -bt, -bv, -q...); EX_DATAERR for a line
 * break in -f or -F (header injection). *out needs sendmail_args_clear in
 * both cases.
 */
int sendmail_args_parse(int argc, char *const *argv, struct sendmail_args *out, char *why,
                        size_t why_size);
void sendmail_args_clear(struct sendmail_args *a);

/*
 * The end of the message in data[0..len) as read so far. Without -i a line
 * holding a single "." (LF or CRLF) ends it, as in sendmail: scan is where to
 * look from (a line start; start at 0 and keep passing it back), end gets
 * where the message ends. Returns true when the "." line was found.
 */
bool sendmail_input_end(const char *data, size_t len, size_t *scan, size_t *end);

/*
 * Whether this process may queue into home/mailout.db directly: the
 * database exists and this user may read and write it and create files
 * beside it (SQLite's WAL). Otherwise the message goes through the spool.
 */
bool sendmail_can_use_database(const char *home);

/*
 * Whether home is this user's and has no database yet (nothing was set up):
 * home/mailout.db does not exist, and home does not either or belongs to
 * this user. Then "set up an account" is the advice, not the spool.
 */
bool sendmail_nothing_set_up(const char *home);

/*
 * The sysexits status for an error: CONFIG -> EX_DATAERR, STORAGE ->
 * EX_TEMPFAIL when temporary (disk full, database busy), EX_IOERR for an I/O
 * error, else EX_CANTCREAT; INTERNAL -> EX_SOFTWARE; anything else
 * EX_TEMPFAIL when temporary, else EX_UNAVAILABLE.
 */
int sendmail_exit_status(const struct mo_error *err);

/* The limit on a message's size: -O MaxMessageSize, else $MAILOUT_MAX_MESSAGE_BYTES, else
 * SENDMAIL_MAX_BYTES_DEFAULT. */
size_t sendmail_limit_bytes(const struct sendmail_args *a);

/*
 * Reads the message from fd into out, up to max_bytes; stops at a line with a
 * single "." unless ignore_dots. 0, or a sysexits status with the reason in
 * why (EX_IOERR, EX_OSERR, EX_DATAERR when larger than max_bytes).
 */
int sendmail_read_input(int fd, bool ignore_dots, size_t max_bytes, struct mo_buf *out, char *why,
                        size_t why_size);

/* ---- the service's socket (sendmail_client.c, sendmail_socket.c) ---- */

#define SENDMAIL_SOCKET_NAME "sendmail.sock"
#define SENDMAIL_PROTOCOL "mailout-sendmail 1"

/* home/sendmail.sock into out; -1 when it does not fit a socket address. */
int sendmail_socket_path(const char *home, char *out, size_t size);

/*
 * Hands the message (already read, "." rule applied) and the command line to
 * the service listening on home's socket, and waits until it is queued.
 * Returns the service's exit status with its stderr text in why (may be
 * empty), or -1 when no service answered: then the caller queues it itself.
 */
int sendmail_client_submit(const char *home, int argc, char *const *argv, const char *data,
                           size_t len, char *why, size_t why_size);
/* The same in two steps: the connection (-1: no service) and the exchange on it (closes fd;
 * -1: no whole reply). */
int sendmail_client_connect(const char *home);
int sendmail_client_exchange(int fd, int argc, char *const *argv, const char *data, size_t len,
                             char *why, size_t why_size);

/* The service's side of the wire format: the command line (argv owned by the caller, each
 * string and the array freed), or EX_PROTOCOL with why. */
int sendmail_request_read(int fd, int *argc_out, char ***argv_out, char *why, size_t why_size);
/* Writes the reply: the status and the text for the client's stderr. */
void sendmail_reply_write(int fd, int status, const char *text);

struct queue_committer;
/*
 * Serves one client on fd (sendmail_socket.c calls it): reads the request,
 * queues the message through c as `mailout sendmail` would, replies.
 * Returns the status sent.
 */
int sendmail_serve_one(int fd, const char *home, struct queue_committer *c);

/* The socket's listener in `mailout serve`: threads accepting clients. */
struct sendmail_socket;
int sendmail_socket_start(const char *home, struct sendmail_socket **out, struct mo_error *err);
void sendmail_socket_stop(struct sendmail_socket *s);

#endif
