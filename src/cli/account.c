/*
 * account.c - `mailout account set|show|list|remove|check`: sender accounts
 * from the command line.
 *
 * `set` merges what is given over what is stored, detects the provider when
 * no server is given (domain, MX, probing), validates every field at once,
 * and saves. The password comes from standard input or a file, is stored
 * encrypted, and is never printed: `show` says only whether one is set.
 */
#include <fcntl.h>
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/send.h"

static void
account_usage(FILE *out)
{
    fputs("usage: mailout account set [--name N] --email E [--username U]\n"
          "                           [--password-stdin | --password-file F] [--sender S]\n"
          "                           [--sender-name NAME] [--provider ID|auto] [--host H]\n"
          "                           [--port P] [--security starttls|tls|none] [--auth MECH]\n"
          "                           [--ca-file F] [--timeout SECONDS] [--no-login] [--json]\n"
          "       mailout account show [--name N] [--json]\n"
          "       mailout account list [--json]\n"
          "       mailout account remove NAME\n"
          "       mailout account check [--name N] [--timeout SECONDS] [--json]\n",
          out);
}

/* Replaces *slot with a copy of value (NULL keeps *slot). */
static int
set_string(char **slot, const char *value)
{
    char *copy;

    if (value == NULL)
        return 0;
    copy = strdup(value);
    if (copy == NULL)
        return -1;
    free(*slot);
    *slot = copy;
    return 0;
}

static const char *
security_label(enum smtp_security s)
{
    return s == SMTP_SECURITY_STARTTLS ? "STARTTLS" : s == SMTP_SECURITY_TLS ? "SSL/TLS" : "none";
}

static void
print_issues(const struct account_issues *issues, bool json)
{
    if (json)
        return;
    for (size_t i = 0; i < issues->n; i++)
        fprintf(issues->items[i].is_error ? stderr : stdout, "  %s %s: %s\n",
                issues->items[i].is_error ? "error" : "note ", issues->items[i].field,
                issues->items[i].message);
}

static json_t *
issues_json(const struct account_issues *issues, bool errors)
{
    json_t *a = json_array();

    for (size_t i = 0; i < issues->n; i++)
        if (issues->items[i].is_error == errors)
            json_array_append_new(a, json_pack("{s:s, s:s}", "field", issues->items[i].field,
                                               "message", issues->items[i].message));
    return a;
}

static void
json_print(json_t *o)
{
    char *text = json_dumps(o, JSON_INDENT(2) | JSON_ENSURE_ASCII);

    if (text != NULL)
        puts(text);
    free(text);
    json_decref(o);
}

static json_t *
cli_account_json(struct account_store *st, const struct account_settings *s)
{
    const struct account_provider *p =
        s->provider_id ? account_provider_find(s->provider_id) : NULL;
    json_t *o =
        json_pack("{s:s, s:s?, s:s?, s:s, s:s?, s:b, s:s?, s:s?, s:s?, s:i, s:s, s:s, s:s?, s:i}",
                  "name", s->name, "provider", s->provider_id, "provider_name",
                  p != NULL ? p->name : NULL, "email", s->email, "username", s->username,
                  "password_set", st != NULL && account_store_has_password(st, s->name), "sender",
                  s->sender, "sender_name", s->sender_name, "host", s->host, "port", (int)s->port,
                  "security", smtp_security_name(s->security), "auth",
                  s->no_login ? "none" : smtp_auth_mech_name(s->auth), "ca_file", s->ca_file,
                  "timeout", s->timeout_s);
    return o;
}

static void
print_account_text(struct account_store *st, const struct account_settings *s)
{
    const struct account_provider *p =
        s->provider_id ? account_provider_find(s->provider_id) : NULL;

    printf("account \"%s\"\n", s->name);
    printf("  mail service   %s\n", p != NULL ? p->name : "Other (own server)");
    printf("  email          %s\n", s->email);
    printf("  user name      %s\n", s->no_login   ? "(no login: the server accepts this machine)"
                                    : s->username ? s->username
                                                  : "(none)");
    printf("  password       %s\n",
           st != NULL && account_store_has_password(st, s->name) ? "set" : "not set");
    printf("  sender         %s%s%s%s\n", s->sender_name ? s->sender_name : "",
           s->sender_name ? " <" : "", s->sender ? s->sender : s->email, s->sender_name ? ">" : "");
    printf("  server         %s port %u, %s\n", s->host ? s->host : "?", s->port,
           security_label(s->security));
    if (s->auth != SMTP_AUTH_AUTO)
        printf("  login method   %s\n", smtp_auth_mech_name(s->auth));
    if (s->ca_file != NULL)
        printf("  CA file        %s\n", s->ca_file);
}

/* Fills provider, host, port and security by detection when no server was given. */
static const struct account_provider *
resolve_provider(struct account_settings *s, const char *provider_arg, bool host_given,
                 const char *dns_server, bool json, struct account_issues *issues)
{
    const struct account_provider *p = NULL;
    struct account_detect_options opt;
    struct account_detection d;
    struct mo_error err;

    if (provider_arg != NULL && strcasecmp(provider_arg, "auto") != 0) {
        p = account_provider_find(provider_arg);
        if (p == NULL && issues->n < ACCOUNT_ISSUES_MAX) {
            struct account_issue *it = &issues->items[issues->n++];
            it->field = "provider";
            it->is_error = true;
            snprintf(it->message, sizeof(it->message),
                     "unknown mail service \"%s\"; see mailout providers", provider_arg);
            issues->n_errors++;
        }
        return p;
    }
    if (provider_arg == NULL && s->provider_id != NULL)
        return account_provider_find(s->provider_id);
    if (host_given || (provider_arg == NULL && s->host != NULL)) {
        /* A server was given: recognise it when it is a known provider's. */
        for (size_t i = 0; s->host != NULL && i < account_provider_count(); i++) {
            const struct account_provider *q = account_provider_at(i);
            if (q->host != NULL && strcasecmp(q->host, s->host) == 0) {
                const struct account_provider *by_domain = NULL;
                const char *at = s->email ? strrchr(s->email, '@') : NULL;
                if (at != NULL)
                    by_domain = account_provider_for_domain(at + 1);
                if (by_domain != NULL && by_domain->host != NULL &&
                    strcasecmp(by_domain->host, q->host) == 0)
                    return by_domain;
                /* A server on this machine (a relay, a bridge) says nothing about the service
                 * unless the address does. */
                if (q->flags & ACCOUNT_PROVIDER_LOCAL || strcmp(s->host, "127.0.0.1") == 0 ||
                    strcmp(s->host, "::1") == 0 || strcasecmp(s->host, "localhost") == 0)
                    return by_domain;
                return q;
            }
        }
        return NULL;
    }
    memset(&opt, 0, sizeof(opt));
    opt.dns_server = dns_server;
    opt.ca_file = s->ca_file;
    if (account_detect(s->email, &opt, &d, &err) != 0)
        return NULL; /* validation reports the bad address */
    if (!json && d.explanation[0])
        printf("detected: %s\n", d.explanation);
    if (d.provider != NULL)
        return d.provider;
    if (d.source == ACCOUNT_DETECT_PROBE) {
        set_string(&s->host, d.host);
        s->port = d.port;
        s->security = d.security;
        s->has_security = true;
    }
    return NULL;
}

static int
account_set(int argc, char **argv)
{
    enum {
        O_NAME = 300,
        O_EMAIL,
        O_USERNAME,
        O_PW_STDIN,
        O_PW_FILE,
        O_SENDER,
        O_SENDER_NAME,
        O_PROVIDER,
        O_HOST,
        O_PORT,
        O_SECURITY,
        O_AUTH,
        O_CA,
        O_TIMEOUT,
        O_JSON,
        O_DNS,
        O_HELP,
        O_NO_LOGIN
    };
    static const struct option opts[] = {
        {"name", required_argument, NULL, O_NAME},
        {"email", required_argument, NULL, O_EMAIL},
        {"username", required_argument, NULL, O_USERNAME},
        {"password-stdin", no_argument, NULL, O_PW_STDIN},
        {"password-file", required_argument, NULL, O_PW_FILE},
        {"sender", required_argument, NULL, O_SENDER},
        {"sender-name", required_argument, NULL, O_SENDER_NAME},
        {"provider", required_argument, NULL, O_PROVIDER},
        {"host", required_argument, NULL, O_HOST},
        {"port", required_argument, NULL, O_PORT},
        {"security", required_argument, NULL, O_SECURITY},
        {"auth", required_argument, NULL, O_AUTH},
        {"ca-file", required_argument, NULL, O_CA},
        {"timeout", required_argument, NULL, O_TIMEOUT},
        {"json", no_argument, NULL, O_JSON},
        {"dns-server", required_argument, NULL, O_DNS},
        {"no-login", no_argument, NULL, O_NO_LOGIN},
        {"help", no_argument, NULL, O_HELP},
        {NULL, 0, NULL, 0},
    };
    struct account_store *st = NULL;
    struct account_settings s;
    struct account_issues issues;
    struct mo_error err;
    const struct account_provider *p;
    const char *name = "default";
    const char *email = NULL, *username = NULL, *sender = NULL, *sender_name = NULL;
    const char *provider_arg = NULL, *host = NULL, *ca = NULL, *pw_file = NULL, *dns = NULL;
    const char *port_arg = NULL, *security_arg = NULL, *auth_arg = NULL, *timeout_arg = NULL;
    bool pw_stdin = false, json = false, existed, no_login = false;
    char *secret = NULL;
    long v;
    int c;
    int code = CLI_EXIT_USAGE;

    memset(&s, 0, sizeof(s));
    memset(&issues, 0, sizeof(issues));
    optind = 1;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case O_NAME:
            name = optarg;
            break;
        case O_EMAIL:
            email = optarg;
            break;
        case O_USERNAME:
            username = optarg;
            break;
        case O_PW_STDIN:
            pw_stdin = true;
            break;
        case O_PW_FILE:
            pw_file = optarg;
            break;
        case O_SENDER:
            sender = optarg;
            break;
        case O_SENDER_NAME:
            sender_name = optarg;
            break;
        case O_PROVIDER:
            provider_arg = optarg;
            break;
        case O_HOST:
            host = optarg;
            break;
        case O_PORT:
            port_arg = optarg;
            break;
        case O_SECURITY:
            security_arg = optarg;
            break;
        case O_AUTH:
            auth_arg = optarg;
            break;
        case O_CA:
            ca = optarg;
            break;
        case O_TIMEOUT:
            timeout_arg = optarg;
            break;
        case O_JSON:
            json = true;
            break;
        case O_DNS:
            dns = optarg;
            break;
        case O_NO_LOGIN:
            no_login = true;
            break;
        case O_HELP:
            account_usage(stdout);
            return CLI_EXIT_OK;
        default:
            account_usage(stderr);
            return CLI_EXIT_USAGE;
        }
    }
    if (optind < argc) {
        account_usage(stderr);
        return CLI_EXIT_USAGE;
    }
    code = cli_open_store(&st);
    if (code != CLI_EXIT_OK)
        return code;
    code = CLI_EXIT_USAGE;
    existed = account_store_get(st, name, false, &s, &err) == 0;
    if (!existed && email == NULL) {
        fprintf(stderr, "mailout account set: --email is required for a new account\n");
        goto out;
    }
    if (set_string(&s.name, name) != 0 || set_string(&s.email, email) != 0 ||
        set_string(&s.username, username) != 0 || set_string(&s.sender, sender) != 0 ||
        set_string(&s.sender_name, sender_name) != 0 || set_string(&s.host, host) != 0 ||
        set_string(&s.ca_file, ca) != 0)
        goto oom;
    if (email != NULL && existed && provider_arg == NULL && host == NULL) {
        /* A new address may belong to another service: detect again. */
        free(s.provider_id);
        s.provider_id = NULL;
        free(s.host);
        s.host = NULL;
        s.port = 0;
        s.has_security = false;
    }
    if (port_arg != NULL) {
        if (mo_parse_long(port_arg, 1, 65535, &v) != 0) {
            fprintf(stderr, "mailout account set: port: must be a number from 1 to 65535\n");
            goto out;
        }
        s.port = (unsigned)v;
    }
    if (security_arg != NULL) {
        if (smtp_security_parse(security_arg, &s.security) != 0) {
            fprintf(stderr, "mailout account set: security: must be starttls, tls or none\n");
            goto out;
        }
        s.has_security = true;
    }
    if (auth_arg != NULL && smtp_auth_mech_parse(auth_arg, &s.auth) != 0) {
        fprintf(stderr, "mailout account set: auth: unknown login method \"%s\"\n", auth_arg);
        goto out;
    }
    if (timeout_arg != NULL) {
        if (mo_parse_long(timeout_arg, 1, 3600, &v) != 0) {
            fprintf(stderr, "mailout account set: timeout: 1 to 3600 seconds\n");
            goto out;
        }
        s.timeout_s = (int)v;
    }
    if (pw_stdin || pw_file != NULL) {
        if (pw_stdin) {
            secret = io_read_secret_fd(STDIN_FILENO, &err);
        } else {
            int fd = open(pw_file, O_RDONLY | O_CLOEXEC);
            if (fd < 0)
                mo_error_set(&err, MO_ERR_CONFIG, "password", "cannot open the password file");
            else {
                secret = io_read_secret_fd(fd, &err);
                close(fd);
            }
        }
        if (secret == NULL) {
            fprintf(stderr, "mailout account set: password: %s\n", err.text);
            goto out;
        }
        s.password = secret;
        secret = NULL;
    }
    p = resolve_provider(&s, provider_arg, host != NULL, dns, json, &issues);
    free(s.provider_id);
    s.provider_id = p != NULL ? strdup(p->id) : NULL;
    if (p != NULL && s.provider_id == NULL)
        goto oom;
    /* --no-login sends without AUTH; naming a user name asks for a login again. */
    if (no_login)
        s.no_login = true;
    else if (username != NULL || pw_stdin || pw_file != NULL)
        s.no_login = false;
    if (!existed && s.password == NULL && !s.no_login && issues.n < ACCOUNT_ISSUES_MAX) {
        struct account_issue *it = &issues.items[issues.n++];
        it->field = "password";
        it->is_error = true;
        snprintf(it->message, sizeof(it->message),
                 "a password is required: give it with --password-stdin or --password-file%s%s",
                 p != NULL && p->app_password_url != NULL ? " (create an app password at " : "",
                 p != NULL && p->app_password_url != NULL ? p->app_password_url : "");
        if (p != NULL && p->app_password_url != NULL)
            strncat(it->message, ")", sizeof(it->message) - strlen(it->message) - 1);
        issues.n_errors++;
    }
    {
        struct account_issues more;
        memset(&more, 0, sizeof(more));
        account_validate(&s, p, &more);
        for (size_t i = 0; i < more.n && issues.n < ACCOUNT_ISSUES_MAX; i++)
            issues.items[issues.n++] = more.items[i];
        issues.n_errors += more.n_errors;
    }
    if (issues.n_errors > 0) {
        if (json)
            json_print(json_pack("{s:b, s:o, s:o}", "ok", 0, "errors", issues_json(&issues, true),
                                 "notes", issues_json(&issues, false)));
        else {
            fprintf(stderr, "mailout account set: not saved; fix these and run it again:\n");
            print_issues(&issues, false);
        }
        goto out;
    }
    if (account_store_put(st, &s, &err) != 0) {
        fprintf(stderr, "mailout account set: %s\n", err.text);
        code = CLI_EXIT_FAILED;
        goto out;
    }
    if (json) {
        json_t *o = cli_account_json(st, &s);
        json_object_set_new(o, "ok", json_true());
        json_object_set_new(o, "notes", issues_json(&issues, false));
        json_print(o);
    } else {
        printf("saved.\n");
        print_account_text(st, &s);
        print_issues(&issues, false);
        printf("next: mailout test%s%s   (sends the confirmation letter to %s)\n",
               strcmp(s.name, "default") ? " --name " : "", strcmp(s.name, "default") ? s.name : "",
               s.email);
    }
    code = CLI_EXIT_OK;
    goto out;
oom:
    fprintf(stderr, "mailout account set: out of memory\n");
    code = CLI_EXIT_FAILED;
out:
    mo_free_secret(secret);
    account_settings_clear(&s);
    account_store_close(st);
    return code;
}

static int
account_show(int argc, char **argv)
{
    struct account_store *st = NULL;
    struct account_settings s;
    struct mo_error err;
    const char *name = "default";
    bool json = false;
    char *last = NULL;
    char *message_id = NULL;
    int64_t when = 0;
    int code;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0)
            json = true;
        else if (strcmp(argv[i], "--name") == 0 && i + 1 < argc)
            name = argv[++i];
        else {
            account_usage(stderr);
            return CLI_EXIT_USAGE;
        }
    }
    code = cli_open_store(&st);
    if (code != CLI_EXIT_OK)
        return code;
    if (account_store_get(st, name, false, &s, &err) != 0) {
        fprintf(stderr, "mailout account show: %s\n", err.text);
        account_store_close(st);
        return CLI_EXIT_USAGE;
    }
    (void)account_store_last_check(st, name, &last, &message_id, &when, &err);
    if (json) {
        json_t *o = cli_account_json(st, &s);
        json_t *lc = last != NULL ? json_loads(last, 0, NULL) : NULL;
        json_object_set_new(o, "last_check", lc != NULL ? lc : json_null());
        json_object_set_new(o, "last_check_at", when ? json_integer(when) : json_null());
        json_object_set_new(o, "last_message_id",
                            message_id != NULL ? json_string(message_id) : json_null());
        json_print(o);
    } else {
        print_account_text(st, &s);
        if (last != NULL) {
            json_t *lc = json_loads(last, 0, NULL);
            printf("  last check     %s\n",
                   json_is_true(json_object_get(lc, "ok")) ? "passed" : "FAILED");
            json_decref(lc);
        }
        if (message_id != NULL)
            printf("  test letter    <%s>\n", message_id);
    }
    free(last);
    free(message_id);
    account_settings_clear(&s);
    account_store_close(st);
    return CLI_EXIT_OK;
}

static int
account_list(int argc, char **argv)
{
    struct account_store *st = NULL;
    struct mo_error err;
    char **names = NULL;
    size_t n = 0;
    bool json = argc > 1 && strcmp(argv[1], "--json") == 0;
    json_t *list = json ? json_array() : NULL;
    int code = cli_open_store(&st);

    if (code != CLI_EXIT_OK) {
        json_decref(list);
        return code;
    }
    if (account_store_list(st, &names, &n, &err) != 0) {
        fprintf(stderr, "mailout account list: %s\n", err.text);
        json_decref(list);
        account_store_close(st);
        return CLI_EXIT_FAILED;
    }
    if (!json && n == 0)
        printf("no accounts yet: create one with mailout setup or mailout account set\n");
    for (size_t i = 0; i < n; i++) {
        struct account_settings s;

        if (account_store_get(st, names[i], false, &s, &err) == 0) {
            if (json)
                json_array_append_new(list, cli_account_json(st, &s));
            else
                printf("%-16s %-32s %s:%u\n", s.name, s.email, s.host ? s.host : "?", s.port);
            account_settings_clear(&s);
        }
        free(names[i]);
    }
    free(names);
    if (json)
        json_print(list);
    account_store_close(st);
    return CLI_EXIT_OK;
}

static int
account_remove(int argc, char **argv)
{
    struct account_store *st = NULL;
    struct mo_error err;
    int code;

    if (argc != 2) {
        account_usage(stderr);
        return CLI_EXIT_USAGE;
    }
    code = cli_open_store(&st);
    if (code != CLI_EXIT_OK)
        return code;
    if (account_store_remove(st, argv[1], &err) != 0) {
        fprintf(stderr, "mailout account remove: %s\n", err.text);
        code = err.category == MO_ERR_CONFIG ? CLI_EXIT_USAGE : CLI_EXIT_FAILED;
    } else {
        printf("removed account \"%s\" (its password is gone too)\n", argv[1]);
    }
    account_store_close(st);
    return code;
}

int
cli_account_main(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "--help") == 0) {
        account_usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? CLI_EXIT_USAGE : CLI_EXIT_OK;
    }
    if (strcmp(argv[1], "set") == 0)
        return account_set(argc - 1, argv + 1);
    if (strcmp(argv[1], "show") == 0)
        return account_show(argc - 1, argv + 1);
    if (strcmp(argv[1], "list") == 0)
        return account_list(argc - 1, argv + 1);
    if (strcmp(argv[1], "remove") == 0)
        return account_remove(argc - 1, argv + 1);
    if (strcmp(argv[1], "check") == 0)
        return cli_check_main(argc - 1, argv + 1);
    fprintf(stderr, "mailout account: unknown subcommand \"%s\"\n", argv[1]);
    account_usage(stderr);
    return CLI_EXIT_USAGE;
}
