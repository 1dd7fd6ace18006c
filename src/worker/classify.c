/*
 * classify.c - what a server's reply means for a queued message: delivered,
 * try later, or refused for good; and which replies are a provider's sending
 * limit, so the breaker stops the account instead of trying message after
 * message.
 *
 * Why its own file: the tables below come from real provider replies
 * (the team's reference notes smtp-errors.md, sections 1, 3 and 8) and are
 * what the unit tests check line by line. Matching follows that file's advice:
 * the reply code, the enhanced code when there is one, and a short key phrase,
 * never the whole text (Google appends "<id> - gsmtp", Microsoft a server name).
 * RFCs: 5321 4.2 (reply codes), 3463 (enhanced status codes: X.4.5 is "mail
 * system congestion", a condition that passes).
 * Leaves out: per-provider overrides (none are needed yet).
 */
#include "worker/worker_internal.h"

#include <stddef.h>
#include <string.h>
#include <strings.h>

/* Case-insensitive substring search; linear, the texts are one reply long. */
static bool
text_has(const char *text, const char *phrase)
{
    size_t n = strlen(phrase);

    if (text == NULL)
        return false;
    for (const char *p = text; *p; p++)
        if (strncasecmp(p, phrase, n) == 0)
            return true;
    return false;
}

static bool
enhanced_is(const char *enhanced, const char *want)
{
    return enhanced != NULL && strcmp(enhanced, want) == 0;
}

/*
 * Phrases of sending limits and throttling. Each names the account's sending,
 * not a recipient's mailbox: "quota exceeded" alone is not here, because
 * "552 5.2.2 mailbox full / over quota" is the recipient's problem.
 */
static const char *const quota_phrases[] = {
    "daily user sending limit",   /* Gmail 550 5.4.5 */
    "daily sending quota",        /* Gmail, older */
    "sending limit exceeded",     /* Gmail, Zoho, others */
    "sending quota exceeded",     /* generic */
    "daily message quota",        /* SES 454 */
    "maximum sending rate",       /* SES 454 */
    "throttling failure",         /* SES 454 */
    "too many login attempts",    /* Gmail 454 4.7.0 */
    "too many bad auth attempts", /* Yahoo/AOL 535 5.7.0 #AUTH005 */
    "rate limit",                 /* "rate limit exceeded", "rate limited" */
    "message rate exceeded",      /* Exim ratelimit */
};

bool
worker_reply_is_quota(int code, const char *enhanced, const char *text)
{
    if (code < 400 || code >= 600)
        return false;
    /* X.4.5: the server is congested on our account's behalf (Gmail's daily limit). */
    if (enhanced_is(enhanced, "5.4.5") || enhanced_is(enhanced, "4.4.5"))
        return true;
    /* Google's rate limiting: 421-4.7.0 Try again later, closing connection. */
    if (code == 421 && enhanced_is(enhanced, "4.7.0"))
        return true;
    for (size_t i = 0; i < sizeof(quota_phrases) / sizeof(quota_phrases[0]); i++)
        if (text_has(text, quota_phrases[i]))
            return true;
    return false;
}

/*
 * 5xx replies that still mean "later": the provider's limit, or a server that
 * says in words to try again. Everything else 5xx is final (RFC 5321 4.2.1).
 */
bool
worker_reply_is_temporary(int code, const char *enhanced, const char *text)
{
    if (code >= 400 && code < 500)
        return true;
    if (code < 500 || code >= 600)
        return false;
    if (worker_reply_is_quota(code, enhanced, text))
        return true;
    /* RFC 3463 X.4.x are network/routing conditions, X.3.2 "system not accepting". */
    if (enhanced_is(enhanced, "5.3.2"))
        return true;
    return text_has(text, "try again later") || text_has(text, "please try again") ||
           text_has(text, "temporarily");
}

enum worker_verdict
worker_reply_verdict(int code, const char *enhanced, const char *text)
{
    if (code >= 200 && code < 300)
        return WORKER_DELIVERED;
    if (code >= 500 && code < 600 && !worker_reply_is_temporary(code, enhanced, text))
        return WORKER_FAIL;
    return WORKER_DEFER;
}
