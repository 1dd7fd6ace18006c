/*
 * setup.c - `mailout setup`: the wizard for a person at a terminal.
 *
 * It asks for the email address, names the detected mail service and its
 * settings, explains the app-password steps with the provider's link, reads
 * the password without echo, validates, checks the connection, and on a
 * failure names the field at fault and asks for that field again. Then it
 * saves and offers the confirmation letter. Everything it asks can be
 * answered by a program too (it reads lines from standard input).
 * Leaves out: OAuth2 sign-in (a token can be set with account set).
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <termios.h>
#include <unistd.h>

#include "cli/cli.h"

#define SETUP_ROUNDS 5 /* how often a wrong field is asked again before giving up */

/* Reads one line (without its newline) into a fresh string; NULL at end of input. */
static char *
read_line(bool secret)
{
    struct termios old, quiet;
    bool hidden = false;
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;

    fflush(stdout);
    if (secret && isatty(STDIN_FILENO) && tcgetattr(STDIN_FILENO, &old) == 0) {
        quiet = old;
        quiet.c_lflag &= ~(tcflag_t)ECHO;
        hidden = tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet) == 0;
    }
    n = getline(&line, &cap, stdin);
    if (hidden) {
        tcsetattr(STDIN_FILENO, TCSAFLUSH, &old);
        putchar('\n');
    }
    if (n < 0) {
        if (line != NULL)
            mo_wipe(line, cap);
        free(line);
        return NULL;
    }
    if (n > 0 && line[n - 1] == '\n')
        line[--n] = '\0';
    if (n > 0 && line[n - 1] == '\r')
        line[--n] = '\0';
    return line;
}

/* Asks a question with an optional default; returns a fresh answer (the default on empty). */
static char *
ask(const char *question, const char *def)
{
    char *answer;

    if (def != NULL && def[0] != '\0')
        printf("%s [%s]: ", question, def);
    else
        printf("%s: ", question);
    answer = read_line(false);
    if (answer != NULL && answer[0] == '\0' && def != NULL) {
        free(answer);
        return strdup(def);
    }
    return answer;
}

static bool
ask_yes(const char *question)
{
    char *a;
    bool yes;

    printf("%s [Y/n]: ", question);
    a = read_line(false);
    yes = a != NULL && (a[0] == '\0' || a[0] == 'y' || a[0] == 'Y');
    free(a);
    return yes;
}

static void
replace(char **slot, char *value)
{
    if (value == NULL)
        return;
    if (*slot != NULL)
        mo_wipe(*slot, strlen(*slot)); /* it may be the password */
    free(*slot);
    *slot = value;
}

static void
explain_provider(const struct account_provider *p)
{
    printf("\nThis is %s: server %s, ", p->name, p->host ? p->host : "?");
    if (p->port_starttls)
        printf("port %u with STARTTLS", p->port_starttls);
    else if (p->port_tls)
        printf("port %u with SSL/TLS", p->port_tls);
    printf(".\n");
    if (p->flags & ACCOUNT_PROVIDER_OAUTH_ONLY)
        printf("Note: %s no longer accepts passwords from mail programs; it needs an OAuth2 "
               "token (mailout account set --auth xoauth2).\n",
               p->name);
    else if (p->app_password != ACCOUNT_APP_PASSWORD_NO) {
        printf("%s wants an app password, not your normal password:\n", p->name);
        printf("  1. Turn on 2-Step Verification (two-factor sign-in) for the account.\n");
        printf("  2. Open %s and create an app password; name it after your shop.\n",
               p->app_password_url ? p->app_password_url : "your account's security page");
        printf("  3. Copy it and paste it below (spaces are fine: mailout removes them).\n");
    }
    if (p->limits_text != NULL)
        printf("Sending limit: %s.\n", p->limits_text);
    printf("\n");
}

/* Asks for the field the diagnosis or validation names. */
static void
ask_field(struct account_settings *s, const char *field)
{
    char port[16];

    if (strcmp(field, "password") == 0) {
        printf("Password (not shown): ");
        replace(&s->password, read_line(true));
    } else if (strcmp(field, "username") == 0) {
        replace(&s->username, ask("User name", s->username));
    } else if (strcmp(field, "sender") == 0) {
        replace(&s->sender, ask("Sender's email", s->sender ? s->sender : s->email));
    } else if (strcmp(field, "sender_name") == 0) {
        replace(&s->sender_name, ask("Sender name", s->sender_name));
    } else if (strcmp(field, "email") == 0) {
        replace(&s->email, ask("Email", s->email));
    } else if (strcmp(field, "host") == 0) {
        replace(&s->host, ask("Server (host)", s->host));
    } else if (strcmp(field, "port") == 0 || strcmp(field, "security") == 0) {
        char *a;
        long v;

        /* An unknown service: offer the usual submission port, not an empty one. */
        if (s->port == 0) {
            s->port = 587;
            if (!s->has_security)
                s->security = SMTP_SECURITY_STARTTLS;
        }
        snprintf(port, sizeof(port), "%u", s->port);
        a = ask("Port (587 for STARTTLS, 465 for SSL/TLS)", port);
        if (a != NULL && mo_parse_long(a, 1, 65535, &v) == 0)
            s->port = (unsigned)v;
        free(a);
        a = ask("Security (starttls, tls, none)", smtp_security_name(s->security));
        if (a != NULL && smtp_security_parse(a, &s->security) == 0)
            s->has_security = true;
        free(a);
    } else if (strcmp(field, "ca_file") == 0) {
        replace(&s->ca_file, ask("CA file", s->ca_file));
    }
}

static void
print_steps(const struct account_check_result *r)
{
    for (size_t i = 0; i < r->n_steps; i++)
        printf("  %s %s (%lld ms)\n", r->steps[i].ok ? "ok    " : "FAILED", r->steps[i].name,
               (long long)r->steps[i].ms);
}

int
cli_setup_main(int argc, char **argv)
{
    enum { O_NAME = 500, O_CA, O_DNS, O_HELP };
    static const struct option opts[] = {
        {"name", required_argument, NULL, O_NAME},
        {"ca-file", required_argument, NULL, O_CA},
        {"dns-server", required_argument, NULL, O_DNS},
        {"help", no_argument, NULL, O_HELP},
        {NULL, 0, NULL, 0},
    };
    struct account_store *st = NULL;
    struct account_settings s;
    struct account_detect_options dopt;
    struct account_detection d;
    struct account_check_result r;
    struct mo_error err;
    const struct account_provider *p = NULL;
    const char *name = "default";
    const char *ca = NULL;
    const char *dns = NULL;
    bool passed = false;
    int code;
    int c;

    memset(&s, 0, sizeof(s));
    memset(&r, 0, sizeof(r));
    optind = 1;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (c == O_NAME)
            name = optarg;
        else if (c == O_CA)
            ca = optarg;
        else if (c == O_DNS)
            dns = optarg;
        else {
            fprintf(c == O_HELP ? stdout : stderr,
                    "usage: mailout setup [--name N] [--ca-file F]\n");
            return c == O_HELP ? CLI_EXIT_OK : CLI_EXIT_USAGE;
        }
    }
    code = cli_open_store(&st);
    if (code != CLI_EXIT_OK)
        return code;
    code = CLI_EXIT_FAILED;
    s.name = strdup(name);
    s.ca_file = ca != NULL ? strdup(ca) : NULL;
    printf("mailout setup: let's connect your shop to your mail account.\n"
           "Data folder: %s\n\n",
           cli_home());

    /* 1. The address, and what it tells us. */
    for (int round = 0; s.email == NULL && round < SETUP_ROUNDS; round++) {
        char *email = ask("Your email address (the account mail will be sent from)", NULL);
        if (email == NULL)
            goto eof;
        memset(&dopt, 0, sizeof(dopt));
        dopt.dns_server = dns;
        dopt.ca_file = ca;
        if (account_detect(email, &dopt, &d, &err) != 0) {
            printf("  %s\n", err.text);
            free(email);
            continue;
        }
        s.email = email;
    }
    if (s.email == NULL)
        goto eof;
    p = d.provider;
    if (p != NULL) {
        explain_provider(p);
        s.provider_id = strdup(p->id);
    } else if (d.source == ACCOUNT_DETECT_PROBE) {
        printf("\nFound a mail server: %s port %u (%s).\n\n", d.host, d.port,
               d.security == SMTP_SECURITY_TLS ? "SSL/TLS" : "STARTTLS");
        s.host = strdup(d.host);
        s.port = d.port;
        s.security = d.security;
        s.has_security = true;
    } else {
        printf("\nmailout does not know this mail service. Your provider's help pages list its "
               "SMTP server; look for \"SMTP\", \"outgoing server\" or \"mail client "
               "settings\".\n");
        ask_field(&s, "host");
        ask_field(&s, "port");
    }

    /* 2. Login and sender. */
    replace(&s.username, ask("User name (your full email address, or the part before @)", s.email));
    printf("Password%s (not shown): ",
           p != NULL && p->app_password != ACCOUNT_APP_PASSWORD_NO ? " (the app password)" : "");
    replace(&s.password, read_line(true));
    if (s.password == NULL)
        goto eof;
    replace(&s.sender, ask("Sender's email (what customers see as From)", s.email));
    replace(&s.sender_name, ask("Sender name (e.g. your shop's name; may be empty)", ""));
    if (s.sender_name != NULL && s.sender_name[0] == '\0') {
        free(s.sender_name);
        s.sender_name = NULL;
    }

    /* 3. Validate and check, asking again for whatever field is at fault. */
    for (int round = 0; round < SETUP_ROUNDS && !passed; round++) {
        struct account_issues issues;
        size_t errors;

        memset(&issues, 0, sizeof(issues));
        errors = account_validate(&s, p, &issues);
        for (size_t i = 0; i < issues.n; i++)
            printf("  %s %s: %s\n", issues.items[i].is_error ? "problem" : "note   ",
                   issues.items[i].field, issues.items[i].message);
        if (errors > 0) {
            for (size_t i = 0; i < issues.n; i++)
                if (issues.items[i].is_error)
                    ask_field(&s, issues.items[i].field);
            continue;
        }
        printf("\nChecking the connection to %s port %u...\n", s.host, s.port);
        account_check_result_clear(&r);
        account_check(&s, false, NULL, &r);
        print_steps(&r);
        if (r.ok) {
            printf("The server accepts your login and sender.\n\n");
            passed = true;
            break;
        }
        printf("\n%s\n  %s\n  What to do: %s\n", r.diagnosis.title, r.diagnosis.explanation,
               r.diagnosis.fix);
        if (r.diagnosis.help_url != NULL)
            printf("  Help: %s\n", r.diagnosis.help_url);
        if (r.diagnosis.field == NULL) {
            if (!ask_yes("Nothing in the form can fix this now. Try again?"))
                break;
            continue;
        }
        printf("\nLet's change the %s.\n", r.diagnosis.field);
        ask_field(&s, r.diagnosis.field);
    }
    if (!passed && !ask_yes("The check did not pass. Save these settings anyway?")) {
        printf("Nothing was saved.\n");
        goto out;
    }

    /* 4. Save, then the confirmation letter. */
    if (account_store_put(st, &s, &err) != 0) {
        printf("Could not save: %s\n", err.text);
        goto out;
    }
    printf("Saved as account \"%s\" in %s.\n", s.name, cli_home());
    code = passed ? CLI_EXIT_OK : CLI_EXIT_FAILED;
    if (passed && ask_yes("Send the confirmation letter to your address now?")) {
        account_check_result_clear(&r);
        account_check(&s, true, NULL, &r);
        print_steps(&r);
        if (r.ok) {
            printf("Sent. Check the inbox of %s for \"mailout: your mail settings work\".\n", r.to);
            (void)account_store_record_check(st, s.name, "{\"ok\":true}", r.message_id, &err);
        } else {
            printf("%s\n  %s\n  What to do: %s\n", r.diagnosis.title, r.diagnosis.explanation,
                   r.diagnosis.fix);
            code = CLI_EXIT_FAILED;
        }
    }
    goto out;
eof:
    printf("\nStopped: no more input. Nothing was saved.\n");
    code = CLI_EXIT_USAGE;
out:
    account_check_result_clear(&r);
    account_settings_clear(&s);
    account_store_close(st);
    return code;
}
