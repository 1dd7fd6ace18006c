'use strict';
/*
 * nodemailer's smtp-server as a test SMTP server for mailout's integration tests.
 *
 * Why: a third, independent server implementation (after Postfix and aiosmtpd), with its own
 * reply texts, enhanced status codes and AUTH code paths.
 *
 * Usage: node server.js CONFIG.json
 * CONFIG: {"cert", "key", "users": {login: password}, "store": dir, "events": file.jsonl,
 *          "size": bytes, "listeners": [{"name", "port", "kind"}]}
 * Kinds:
 *   starttls    STARTTLS offered; AUTH (PLAIN, LOGIN, CRAM-MD5) only after it and required.
 *   tls         implicit TLS (secure: true), AUTH required.
 *   plain_auth  no TLS at all, AUTH allowed in clear (loopback tests of --security none).
 * RCPT TO addresses whose local part starts with "refuse" get 550 (5.1.1).
 * Prints one line "READY {json}" on stdout when every listener listens.
 * Each message: NNNNNN-<id>.eml (bytes as received, dot-unstuffed) then NNNNNN-<id>.json (the
 * envelope), the .json written last and atomically.
 *
 * Leaves out: XOAUTH2, LMTP, DSN. RFCs: 5321, 3207, 4954, 4616, 2195, 8314, 1870 (SIZE).
 */
const fs = require('fs');
const path = require('path');
const crypto = require('crypto');
const { SMTPServer } = require('smtp-server');

const config = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
const key = fs.readFileSync(config.key);
const cert = fs.readFileSync(config.cert);
const users = config.users;
const sizeLimit = config.size || 50 * 1024 * 1024;
let seq = 0;

fs.mkdirSync(config.store, { recursive: true });
const eventsFd = fs.openSync(config.events, 'a');
function logEvent(ev) {
    ev.t = Date.now() / 1000;
    fs.writeSync(eventsFd, JSON.stringify(ev) + '\n');
}

function makeServer(listener) {
    const kind = listener.kind;
    const options = {
        name: 'smtp-server.test',
        key,
        cert,
        size: sizeLimit,
        authMethods: ['PLAIN', 'LOGIN', 'CRAM-MD5'],
        disableReverseLookup: true,
        hideENHANCEDSTATUSCODES: false,
        maxAllowedUnauthenticatedCommands: false,
        socketTimeout: 60 * 1000,
        closeTimeout: 1000,
        logger: false
    };
    if (kind === 'tls') {
        options.secure = true;
    } else if (kind === 'starttls') {
        options.secure = false;
    } else if (kind === 'plain_auth') {
        options.secure = false;
        options.allowInsecureAuth = true;
        options.authOptional = true;
        options.disabledCommands = ['STARTTLS'];
    } else {
        throw new Error('unknown listener kind ' + kind);
    }

    options.onConnect = (session, cb) => {
        logEvent({ event: 'connect', listener: listener.name, port: listener.port, conn: session.id });
        cb();
    };

    options.onAuth = (auth, session, cb) => {
        const want = Object.prototype.hasOwnProperty.call(users, auth.username) ? users[auth.username] : null;
        let ok = false;
        if (want !== null) {
            if (auth.method === 'CRAM-MD5') {
                ok = auth.validatePassword(want);
            } else {
                ok = auth.password === want;
            }
        }
        logEvent({
            event: 'auth_result', listener: listener.name, port: listener.port, conn: session.id,
            mechanism: auth.method, login: auth.username, ok
        });
        if (!ok) {
            return cb(new Error('Invalid username or password'));
        }
        cb(null, { user: auth.username });
    };

    options.onMailFrom = (address, session, cb) => {
        if (kind === 'starttls' && !session.secure) {
            const err = new Error('Must issue a STARTTLS command first');
            err.responseCode = 530;
            return cb(err);
        }
        cb();
    };

    options.onRcptTo = (address, session, cb) => {
        if (address.address.toLowerCase().startsWith('refuse')) {
            const err = new Error('<' + address.address + '>: Recipient address rejected: refused by test policy');
            err.responseCode = 550;
            return cb(err);
        }
        cb();
    };

    options.onData = (stream, session, cb) => {
        const chunks = [];
        stream.on('data', (c) => chunks.push(c));
        stream.on('end', () => {
            if (stream.sizeExceeded) {
                const err = new Error('Message exceeds fixed maximum message size');
                err.responseCode = 552;
                return cb(err);
            }
            const raw = Buffer.concat(chunks);
            seq += 1;
            const base = path.join(config.store,
                String(seq).padStart(6, '0') + '-' + crypto.randomBytes(6).toString('hex'));
            fs.writeFileSync(base + '.eml', raw);
            const env = session.envelope;
            const meta = {
                server: 'smtp-server',
                listener: listener.name,
                port: listener.port,
                mail_from: env.mailFrom ? env.mailFrom.address : null,
                rcpt_tos: env.rcptTo.map((r) => r.address),
                auth_user: session.user || null,
                tls: !!session.secure,
                size: raw.length,
                received_at: Date.now() / 1000
            };
            fs.writeFileSync(base + '.json.tmp', JSON.stringify(meta));
            fs.renameSync(base + '.json.tmp', base + '.json');
            logEvent({ event: 'message', listener: listener.name, port: listener.port, file: base + '.eml' });
            cb(null, 'Ok: queued as ' + seq);
        });
    };

    const server = new SMTPServer(options);
    server.on('error', (err) => {
        logEvent({ event: 'error', listener: listener.name, port: listener.port, message: String(err && err.message) });
        if (!(listener.name in ready)) {
            // Could not listen (port taken?): say so and let the harness see us exit.
            process.stderr.write('listener ' + listener.name + ' on port ' + listener.port + ': ' + err + '\n');
            process.exit(1);
        }
    });
    return server;
}

const servers = [];
const ready = {};
let pending = config.listeners.length;
for (const listener of config.listeners) {
    const server = makeServer(listener);
    servers.push(server);
    server.listen(listener.port, '127.0.0.1', () => {
        ready[listener.name] = listener.port;
        pending -= 1;
        if (pending === 0) {
            process.stdout.write('READY ' + JSON.stringify({ pid: process.pid, ports: ready }) + '\n');
        }
    });
}

function shutdown() {
    let left = servers.length;
    for (const s of servers) {
        s.close(() => {
            left -= 1;
            if (left === 0) {
                process.exit(0);
            }
        });
    }
    setTimeout(() => process.exit(0), 2000).unref();
}
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);
