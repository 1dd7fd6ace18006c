/*
 * detect.c - `mailout detect EMAIL` (which mail service and server an
 * address uses, and how mailout found out) and `mailout providers` (the
 * built-in table).
 *
 * Both print plain text, or one JSON object with --json. Exit status of
 * detect: 0 found, 1 nothing found, 2 bad input. Leaves out: saving
 * anything (mailout account set and mailout setup do that).
 */
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"

static void
detect_usage(FILE *out)
{
    fputs("usage: mailout detect EMAIL [--dns-server IP:PORT] [--no-probe] [--timeout SECONDS]\n"
          "                      [--ca-file FILE] [--json]\n"
          "\n"
          "Tells which mail service and SMTP server EMAIL uses: from the address's domain,\n"
          "else from the domain's MX records, else by trying smtp.DOMAIN and mail.DOMAIN on\n"
          "ports 465, 587 and 25 (TLS and login required; nothing is sent).\n"
          "  --dns-server IP:PORT  ask this DNS server only (IPv4), also for the tried servers\n"
          "  --no-probe            do not try smtp./mail. servers\n"
          "  --timeout SECONDS     per DNS query and per connection (default 3)\n"
          "  --ca-file FILE        trust this CA when trying servers (default: the system's)\n"
          "Exit status: 0 found, 1 nothing found, 2 bad usage or input.\n",
          out);
}

static void
providers_usage(FILE *out)
{
    fputs("usage: mailout providers [--json]\n"
          "\n"
          "Lists the mail services mailout knows, with their servers and login rules.\n"
          "Any other server works too: leave the service empty and give host, port and\n"
          "security.\n",
          out);
}

static const char *
source_name(enum account_detect_source source)
{
    switch (source) {
    case ACCOUNT_DETECT_DOMAIN:
        return "domain";
    case ACCOUNT_DETECT_MX:
        return "mx";
    case ACCOUNT_DETECT_PROBE:
        return "probe";
    case ACCOUNT_DETECT_NONE:
        return "none";
    }
    return "none";
}

static const char *
app_password_name(enum account_app_password a)
{
    switch (a) {
    case ACCOUNT_APP_PASSWORD_YES:
        return "yes";
    case ACCOUNT_APP_PASSWORD_WHEN_2FA:
        return "when-2fa";
    case ACCOUNT_APP_PASSWORD_NO:
        return "no";
    }
    return "no";
}

static const char *
username_format_name(enum account_username_format f)
{
    switch (f) {
    case ACCOUNT_USERNAME_FULL_EMAIL:
        return "full-email";
    case ACCOUNT_USERNAME_LOCAL_PART:
        return "local-part";
    case ACCOUNT_USERNAME_OTHER:
        return "other";
    }
    return "other";
}

static const char *
security_label(enum smtp_security s)
{
    return s == SMTP_SECURITY_TLS ? "SSL/TLS" : s == SMTP_SECURITY_STARTTLS ? "STARTTLS" : "none";
}

/* ---- detect ---------------------------------------------------------------- */

static json_t *
detection_json(const struct account_detection *d)
{
    const struct account_provider *p = d->provider;
    bool found = d->source != ACCOUNT_DETECT_NONE;

    return json_pack(
        "{s:s, s:s?, s:s?, s:s?, s:o, s:s?, s:s?, s:s, s:s?, s:s?, s:s?}", "source",
        source_name(d->source), "provider", p ? p->id : NULL, "name", p ? p->name : NULL, "host",
        found ? d->host : NULL, "port", found ? json_integer(d->port) : json_null(), "security",
        found ? smtp_security_name(d->security) : NULL, "mx", d->mx_host[0] ? d->mx_host : NULL,
        "explanation", d->explanation, "app_password",
        p ? app_password_name(p->app_password) : NULL, "app_password_url",
        p ? p->app_password_url : NULL, "limits", p ? p->limits_text : NULL);
}

static void
detection_print(const struct account_detection *d)
{
    const struct account_provider *p = d->provider;

    if (d->source == ACCOUNT_DETECT_NONE) {
        printf("Not found: %s.\n"
               "Your mail host's help pages list its SMTP server (look for \"SMTP\", \"outgoing "
               "server\" or \"mail client settings\").\n",
               d->explanation);
        return;
    }
    printf("Found: %s.\n", d->explanation);
    if (p != NULL)
        printf("  mail service   %s (%s)\n", p->name, p->id);
    printf("  server         %s port %u, %s", d->host, d->port, security_label(d->security));
    if (p != NULL && p->port_starttls != 0 && p->port_tls != 0)
        printf(" (or port %u with SSL/TLS)", p->port_tls);
    printf("\n");
    printf("  found by       %s\n", d->source == ACCOUNT_DETECT_DOMAIN ? "the address's domain"
                                    : d->source == ACCOUNT_DETECT_MX   ? "the domain's MX records"
                                                                       : "trying the server");
    if (p == NULL)
        return;
    if (p->fixed_username != NULL)
        printf("  user name      always \"%s\"\n", p->fixed_username);
    else
        printf("  user name      %s\n", p->username_format == ACCOUNT_USERNAME_FULL_EMAIL
                                            ? "your full address"
                                        : p->username_format == ACCOUNT_USERNAME_LOCAL_PART
                                            ? "the part before @"
                                            : "the SMTP login the service gives you");
    if (p->flags & ACCOUNT_PROVIDER_OAUTH_ONLY)
        printf("  password       refused: %s accepts only OAuth2 tokens (XOAUTH2)\n", p->name);
    else if (p->app_password == ACCOUNT_APP_PASSWORD_YES)
        printf("  password       an app password; your normal password will not work%s%s\n",
               p->app_password_url ? ". Create one at " : "",
               p->app_password_url ? p->app_password_url : "");
    else if (p->app_password == ACCOUNT_APP_PASSWORD_WHEN_2FA)
        printf("  password       your password; an app password once two-step login is on%s%s%s\n",
               p->app_password_url ? " (" : "", p->app_password_url ? p->app_password_url : "",
               p->app_password_url ? ")" : "");
    if (p->limits_text != NULL)
        printf("  limits         %s\n", p->limits_text);
    if (p->help_url != NULL)
        printf("  help           %s\n", p->help_url);
}

int
cli_detect_main(int argc, char **argv)
{
    enum { O_DNS = 300, O_NO_PROBE, O_TIMEOUT, O_CA, O_JSON, O_HELP };
    static const struct option opts[] = {
        {"dns-server", required_argument, NULL, O_DNS},
        {"no-probe", no_argument, NULL, O_NO_PROBE},
        {"timeout", required_argument, NULL, O_TIMEOUT},
        {"ca-file", required_argument, NULL, O_CA},
        {"json", no_argument, NULL, O_JSON},
        {"help", no_argument, NULL, O_HELP},
        {NULL, 0, NULL, 0},
    };
    struct account_detect_options opt;
    struct account_detection d;
    struct mo_error err;
    bool json = false;
    long v;
    int c;

    memset(&opt, 0, sizeof(opt));
    mo_error_clear(&err);
    optind = 0; /* glibc: start over, argv is a new vector */
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case O_DNS:
            opt.dns_server = optarg;
            break;
        case O_NO_PROBE:
            opt.no_probe = true;
            break;
        case O_TIMEOUT:
            if (mo_parse_long(optarg, 1, 60, &v) != 0) {
                fprintf(stderr, "mailout detect: --timeout takes 1 to 60 seconds\n");
                return CLI_EXIT_USAGE;
            }
            opt.timeout_ms = (int)v * 1000;
            break;
        case O_CA:
            opt.ca_file = optarg;
            break;
        case O_JSON:
            json = true;
            break;
        case O_HELP:
            detect_usage(stdout);
            return CLI_EXIT_OK;
        default:
            detect_usage(stderr);
            return CLI_EXIT_USAGE;
        }
    }
    if (optind != argc - 1) {
        detect_usage(stderr);
        return CLI_EXIT_USAGE;
    }
    if (account_detect(argv[optind], &opt, &d, &err) != 0) {
        if (json)
            cli_json_print(json_pack("{s:o}", "error", cli_error_json(&err)));
        else
            fprintf(stderr, "mailout detect: %s\n", err.text);
        return err.category == MO_ERR_CONFIG ? CLI_EXIT_USAGE : CLI_EXIT_FAILED;
    }
    if (json)
        cli_json_print(detection_json(&d));
    else
        detection_print(&d);
    return d.source == ACCOUNT_DETECT_NONE ? CLI_EXIT_FAILED : CLI_EXIT_OK;
}

/* ---- providers ------------------------------------------------------------- */

static json_t *
names_json(const char *const *names)
{
    json_t *a = json_array();

    for (; a != NULL && *names != NULL; names++)
        json_array_append_new(a, json_string(*names));
    return a;
}

static json_t *
flags_json(unsigned flags)
{
    static const struct {
        unsigned bit;
        const char *name;
    } names[] = {
        {ACCOUNT_PROVIDER_DOTS_IGNORED, "dots-ignored"},
        {ACCOUNT_PROVIDER_PLUS_TAGS, "plus-tags"},
        {ACCOUNT_PROVIDER_SENDER_MUST_MATCH, "sender-must-match"},
        {ACCOUNT_PROVIDER_REWRITES_FROM, "rewrites-from"},
        {ACCOUNT_PROVIDER_STRIP_PASSWORD_SPACES, "strip-password-spaces"},
        {ACCOUNT_PROVIDER_OAUTH_ONLY, "oauth-only"},
        {ACCOUNT_PROVIDER_LOCAL, "local"},
    };
    json_t *a = json_array();

    for (size_t i = 0; a != NULL && i < sizeof(names) / sizeof(names[0]); i++)
        if (flags & names[i].bit)
            json_array_append_new(a, json_string(names[i].name));
    return a;
}

static json_t *
provider_json(const struct account_provider *p)
{
    return json_pack("{s:s, s:s, s:o, s:s, s:o, s:o, s:s, s:s?, s:s, s:b, s:o, s:s?, s:s?, s:s?, "
                     "s:o, s:o, s:s?}",
                     "id", p->id, "name", p->name, "domains", names_json(p->domains), "host",
                     p->host, "port_starttls", cli_json_int_or_null(p->port_starttls), "port_tls",
                     cli_json_int_or_null(p->port_tls), "username_format",
                     username_format_name(p->username_format), "fixed_username", p->fixed_username,
                     "app_password", app_password_name(p->app_password), "oauth2",
                     p->oauth2_supported, "daily_limit", cli_json_int_or_null(p->daily_limit),
                     "limits", p->limits_text, "app_password_url", p->app_password_url, "help_url",
                     p->help_url, "mx_suffixes", names_json(p->mx_suffixes), "flags",
                     flags_json(p->flags), "notes", p->notes);
}

int
cli_providers_main(int argc, char **argv)
{
    enum { O_JSON = 300, O_HELP };
    static const struct option opts[] = {
        {"json", no_argument, NULL, O_JSON},
        {"help", no_argument, NULL, O_HELP},
        {NULL, 0, NULL, 0},
    };
    bool json = false;
    int c;

    optind = 0;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (c == O_JSON) {
            json = true;
        } else if (c == O_HELP) {
            providers_usage(stdout);
            return CLI_EXIT_OK;
        } else {
            providers_usage(stderr);
            return CLI_EXIT_USAGE;
        }
    }
    if (optind != argc) {
        providers_usage(stderr);
        return CLI_EXIT_USAGE;
    }
    if (json) {
        json_t *list = json_array();
        for (size_t i = 0; list != NULL && i < account_provider_count(); i++)
            json_array_append_new(list, provider_json(account_provider_at(i)));
        cli_json_print(json_pack("{s:o}", "providers", list));
        return CLI_EXIT_OK;
    }
    printf("%-22s %-40s %-30s %s\n", "ID", "MAIL SERVICE", "SERVER", "PORTS");
    for (size_t i = 0; i < account_provider_count(); i++) {
        const struct account_provider *p = account_provider_at(i);
        char ports[48];

        if (p->port_starttls != 0 && p->port_tls != 0)
            snprintf(ports, sizeof(ports), "%u STARTTLS, %u SSL/TLS", p->port_starttls,
                     p->port_tls);
        else if (p->port_starttls != 0)
            snprintf(ports, sizeof(ports), "%u STARTTLS", p->port_starttls);
        else
            snprintf(ports, sizeof(ports), "%u SSL/TLS", p->port_tls);
        printf("%-22s %-40.40s %-30s %s%s\n", p->id, p->name, p->host, ports,
               p->app_password == ACCOUNT_APP_PASSWORD_YES     ? ", app password"
               : (p->flags & ACCOUNT_PROVIDER_OAUTH_ONLY) != 0 ? ", OAuth2 only"
                                                               : "");
    }
    printf("\nOther: any server of your own. Leave the mail service empty and give host, port "
           "and security.\n");
    return CLI_EXIT_OK;
}
