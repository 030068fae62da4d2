#!/usr/bin/env node
/*
 * send.js - the ststest sender command (`ststest run --sender-cmd`) for ZoneMTA's
 * outbound path: one delivery of one test message, decided by ZoneMTA's own pieces.
 *
 *   mx-connect (the version ZoneMTA pins) resolves the MX hosts, asks mailauth's
 *   getPolicy for the MTA-STS policy (with ZoneMTA's cache contract), checks each MX
 *   with validateMx and opens the TCP connection;
 *   nodemailer's smtp-connection speaks SMTP and STARTTLS on that socket, with the TLS
 *   options ZoneMTA's sender uses (verify only when the policy says enforce);
 *   zone-mta/lib/bounces.js (ZoneMTA's bounce rules) decides defer or bounce.
 *
 * The glue between them follows zone-mta 3.10.3 lib/sender.js (Sender#connect and
 * Sender#handleResponseError); it is written anew here, in the order of that file, and
 * README.md lists each place where this adapter has to differ from a real ZoneMTA
 * (the monkey-patches, and the configuration that points it at the fake world).
 *
 * Usage: node send.js --rcpt ADDR --dns HOST:PORT --ca FILE --smtp-port N
 *          --https-port N [--now UNIX] [--cache PATH] [--require-tls 0|1]
 *          [--sender-mode auto|enforce|testing|none] [--dns-timeout SECONDS]
 *          [--mode M] [--record FILE]
 * Exit status, like sendmail: 0 delivered; 75 deferred; 69 bounced; 76 this case asks
 * for something ZoneMTA has no equivalent of (the last stderr line says what); 64 bad
 * usage; 70 the adapter itself failed (never the peer's behaviour).
 */
'use strict';

const fs = require('fs');
const path = require('path');
const os = require('os');

const EX_OK = 0;
const EX_USAGE = 64;
const EX_UNAVAILABLE = 69;
const EX_SOFTWARE = 70;
const EX_TEMPFAIL = 75;
const EX_UNSUPPORTED = 76;

const started = process.hrtime.bigint();
const facts = { policy: null, mx: [], fetch: [], smtp: [] };

function note(line) {
    const ms = Number(process.hrtime.bigint() - started) / 1e6;
    process.stderr.write(`zonemta +${(ms / 1000).toFixed(3)}s ${line}\n`);
}

function finish(code, line) {
    const verdict = summary();
    process.stderr.write(`zonemta: ${line}${verdict ? ' | ' + verdict : ''}\n`);
    if (args.record) {
        try {
            fs.appendFileSync(args.record, JSON.stringify({ exit: code, reason: line, facts }) + '\n');
        } catch (err) {
            process.stderr.write(`zonemta: cannot append to --record ${args.record}: ${err.message}\n`);
        }
    }
    process.exit(code);
}

/* What mx-connect and mailauth decided, on one line. */
function summary() {
    const parts = [];
    const p = facts.policy;
    if (p) {
        const pol = p.policy || {};
        let s = `policy: status=${p.status} mode=${pol.mode} id=${pol.id}`;
        if (pol.mx) s += ` mx=${pol.mx.join(',')}`;
        if (pol.maxAge !== undefined) s += ` max_age=${pol.maxAge}`;
        if (pol.error) s += ` error=${JSON.stringify(pol.error.message || String(pol.error))}`;
        s += ` known=${p.known ? `${p.known.mode}/${p.known.id}` : 'none'}`;
        parts.push(s);
    }
    if (facts.fetch.length) parts.push(`fetch: ${facts.fetch.join(', ')}`);
    if (facts.mx.length) parts.push(`mx: ${facts.mx.join(', ')}`);
    if (facts.smtp.length) parts.push(`smtp: ${facts.smtp.join(', ')}`);
    return parts.join(' | ');
}

function parseArgs(argv) {
    const out = {};
    const known = new Set(['rcpt', 'dns', 'ca', 'smtp-port', 'https-port', 'now', 'cache', 'require-tls',
        'sender-mode', 'mode', 'record', 'from', 'dns-timeout']);
    for (let i = 0; i < argv.length; i += 2) {
        const key = argv[i].replace(/^--/, '');
        if (!argv[i].startsWith('--') || !known.has(key) || i + 1 >= argv.length) {
            process.stderr.write(`zonemta: bad argument ${JSON.stringify(argv[i])} (see the usage at the top of send.js)\n`);
            process.exit(EX_USAGE);
        }
        out[key.replace(/-/g, '_')] = argv[i + 1];
    }
    for (const key of ['rcpt', 'dns', 'ca', 'smtp_port', 'https_port']) {
        if (!out[key]) {
            process.stderr.write(`zonemta: --${key.replace(/_/g, '-')} is required\n`);
            process.exit(EX_USAGE);
        }
    }
    return out;
}

const args = parseArgs(process.argv.slice(2));

/* ---- 1. What ZoneMTA cannot be asked to do: exit 76 before touching anything. ---- */

if (args.require_tls === '1') {
    // zone-mta 3.10.3 copies a zone's `requireTLS` key (lib/sending-zone.js) but its sender
    // never reads it: TLS is demanded only when an MTA-STS policy in enforce mode matched.
    finish(EX_UNSUPPORTED, 'unsupported: require_tls=1, but ZoneMTA 3.10.3 has no per-destination mandatory TLS ' +
        '(zone option requireTLS is never read by lib/sender.js)');
}
if (args.sender_mode && args.sender_mode !== 'auto') {
    finish(EX_UNSUPPORTED, `unsupported: sender_mode=${args.sender_mode}, but ZoneMTA has no setting that overrides ` +
        'the mode of a discovered MTA-STS policy');
}

let caPem;
try {
    caPem = fs.readFileSync(args.ca);
} catch (err) {
    finish(EX_SOFTWARE, `adapter failed: cannot read --ca ${args.ca}: ${err.message}`);
}
const smtpPort = Number(args.smtp_port);
const httpsPort = Number(args.https_port);

/* ---- 2. Patches, before ZoneMTA's modules load (README.md says why each is needed). ---- */

// Patch 1 - the clock. mailauth computes a policy's expiry with Date.now(), and the cache
// below expires entries like ZoneMTA's Redis TTL; both must follow the world's clock {now},
// which multi-step scenarios move (`advance:`). TLS certificate dates are checked by
// OpenSSL against the real clock: that cannot follow (README.md, adapter limits).
if (args.now) {
    const RealDate = Date;
    const offset = Number(args.now) * 1000 - RealDate.now();
    class WorldDate extends RealDate {
        constructor(...a) {
            if (a.length === 0) super(RealDate.now() + offset);
            else super(...a);
        }
        static now() {
            return RealDate.now() + offset;
        }
    }
    globalThis.Date = WorldDate;
}

// Patch 2 - the policy host's port and trust. mailauth's fetchPolicy calls https.request
// with port 443 hard-coded and the system's trust store; the world serves the policy on
// {https_port} and signs with its own CA {ca}, which must be the only trust anchor.
const https = require('https');
const realHttpsRequest = https.request;
https.request = function (options, cb) {
    if (options && typeof options === 'object' && !(options instanceof URL) && /^mta-sts\./i.test(options.servername || '')) {
        options = Object.assign({}, options, { port: httpsPort, ca: caPem });
        const req = realHttpsRequest.call(https, options, cb);
        const label = `https://${options.servername}:${httpsPort}${options.path} via ${options.host}`;
        req.on('response', res => facts.fetch.push(`${label} -> ${res.statusCode} ${res.headers['content-type'] || '-'}`));
        req.on('error', err => facts.fetch.push(`${label} -> ${err.code || err.message}`));
        return req;
    }
    return realHttpsRequest.apply(https, arguments);
};

// Patch 3 - observation only: record what getPolicy and validateMx returned, for the
// verdict line. The wrapped functions are mailauth's own (the copy mx-connect resolves),
// called with the same arguments; results are passed through untouched.
const mxConnectDir = path.dirname(require.resolve('mx-connect/package.json'));
const mtaSts = require(require.resolve('mailauth/lib/mta-sts', { paths: [mxConnectDir] }));
const realGetPolicy = mtaSts.getPolicy;
mtaSts.getPolicy = async (domain, knownPolicy, opts) => {
    const result = await realGetPolicy(domain, knownPolicy, opts);
    facts.policy = { status: result.status, policy: result.policy, known: knownPolicy || null };
    note(`mailauth getPolicy(${domain}): status=${result.status} mode=${result.policy.mode} id=${result.policy.id}` +
        (result.policy.mx ? ` mx=${result.policy.mx.join(',')}` : '') +
        (result.policy.error ? ` error=${result.policy.error.code || ''} ${result.policy.error.message}` : ''));
    return result;
};
const realValidateMx = mtaSts.validateMx;
mtaSts.validateMx = (mx, policy) => {
    const r = realValidateMx(mx, policy);
    note(`mailauth validateMx(${mx}): valid=${r.valid} mode=${r.mode}${r.match ? ' match=' + r.match : ''}`);
    return r;
};

// DNS: ZoneMTA points Node's resolver at config.dns.nameservers with dns.setServers
// (lib/ip-tools.js); mx-connect and mailauth then use dns.resolve / dns.promises.resolve.
// The world's server is {dns}, with its port.
const dns = require('dns');
try {
    dns.setServers([args.dns]);
    dns.promises.setServers([args.dns]);
} catch (err) {
    finish(EX_SOFTWARE, `adapter failed: dns.setServers(${args.dns}): ${err.message}`);
}

// mx-connect's own hook, delivery.dnsOptions.resolve (also handed to getPolicy as its
// resolver): one Resolver on {dns} whose queries give up after {dns_timeout} seconds, where
// Node's default resolver retries a silent server for up to 75 s (README.md).
const dnsTimeout = Number(args.dns_timeout || 10);
const resolver = new dns.Resolver({ timeout: Math.max(1, Math.round(dnsTimeout * 1000)), tries: 1 });
resolver.setServers([args.dns]);
const dnsResolve = (...a) => resolver.resolve(...a);

const mxConnect = require('mx-connect');
const SMTPConnection = require('nodemailer/lib/smtp-connection');
const bounces = require('zone-mta/lib/bounces');

/* ---- 3. ZoneMTA's MTA-STS policy cache, on a file keyed on {cache}. ---- */

// ZoneMTA keeps policies in Redis under `sts:<domain>` with a TTL of (expires - now), or
// 60 s when that is not positive, and turns a stored error back into an Error
// (lib/sender.js, mtaStsHandler). The same contract here, in {cache}.zonemta.json, so the
// steps of one scenario share it and cases do not.
const cacheFile = args.cache ? `${args.cache}.zonemta.json` : null;
function cacheLoad() {
    if (!cacheFile) return {};
    try {
        return JSON.parse(fs.readFileSync(cacheFile, 'utf-8'));
    } catch (err) {
        if (err.code === 'ENOENT') return {};
        throw err;
    }
}
const stsCache = {
    async get(domain) {
        const entry = cacheLoad()[`sts:${domain}`];
        if (!entry || entry.expiresAt <= Date.now()) return false;
        const policy = JSON.parse(entry.json);
        if (policy.error && policy.error.message) {
            const error = new Error(policy.error.message);
            Object.assign(error, policy.error);
            policy.error = error;
        }
        return policy;
    },
    async set(domain, policy) {
        const expires = policy.expires ? new Date(policy.expires) : false;
        let ttl = expires && !isNaN(expires.getTime()) ? expires.getTime() - Date.now() : 0;
        if (!ttl || ttl <= 0) ttl = 60 * 1000;
        if (policy.error && policy.error.message) {
            policy = Object.assign({}, policy, { error: { message: policy.error.message, code: policy.error.code } });
        }
        if (!cacheFile) return;
        const all = cacheLoad();
        all[`sts:${domain}`] = { json: JSON.stringify(policy), expiresAt: Date.now() + Math.round(ttl / 1000) * 1000 };
        fs.writeFileSync(cacheFile, JSON.stringify(all));
    }
};

/* ---- 4. One delivery, as Sender#connect + Sender#handleResponseError do it. ---- */

const rcpt = args.rcpt;
const domain = rcpt.slice(rcpt.lastIndexOf('@') + 1);
const from = args.from || 'ststest-zonemta@sender.invalid';
const localHostname = 'zonemta.sender.invalid';
const POLICY_RESPONSE = 'Failed to establish a TLS connection to the MX server as requested by policy';

function message() {
    return [
        `From: <${from}>`,
        `To: <${rcpt}>`,
        `Subject: ststest delivery through ZoneMTA's outbound path`,
        `Date: ${new Date().toUTCString().replace('GMT', '+0000')}`,
        `Message-ID: <${process.pid}.${Date.now()}@${localHostname}>`,
        'MIME-Version: 1.0',
        'Content-Type: text/plain; charset=utf-8',
        '',
        `A test message from ${os.hostname()} for ${rcpt}.`,
        ''
    ].join('\r\n');
}

// Sender#handleResponseError: preset categories from mx-connect (dns, network, policy)
// defer only when marked temporary; other errors without an SMTP code defer; SMTP replies
// go through the bounce rules. A first attempt (deferredCount 0) defers unless rejected.
function decide(err) {
    let bounce;
    if (['dns', 'network', 'policy'].includes(err.category)) {
        bounce = { action: err.temporary || err.action === 'defer' ? 'defer' : 'reject', category: err.category,
            message: err.response || err.message, source: 'category preset by mx-connect/sender' };
    } else if (!err.responseCode && !/^\d{3}\b/.test(err.response || err.message)) {
        bounce = { action: 'defer', category: 'network', message: err.response || err.message, source: 'no SMTP code' };
    } else {
        bounce = bounces.check(err.response || err.message, err.category);
        bounce.source = bounce.line ? `bounces.txt line ${bounce.line}` : 'bounces.txt: no rule matched';
    }
    bounce.action = err.action || bounce.action;
    const what = `${bounce.category || 'other'}: ${bounces.formatSMTPResponse(err.response || err.message)} ` +
        `(${bounce.source}${err.code ? ', code ' + err.code : ''})`;
    if (bounce.action === 'reject') finish(EX_UNAVAILABLE, `bounced: ${what}`);
    finish(EX_TEMPFAIL, `deferred: ${what}`);
}

let ignoreTLS = false;
const ignoreMXHosts = [];
let mxLastError = false;

function tryConnect() {
    const mxOptions = {
        target: domain,
        port: smtpPort,
        // config/default.js: zone ignoreIPv6 true, preferIPv6 false; dns.blockLocalAddresses false.
        dnsOptions: { ignoreIPv6: true, preferIPv6: false, blockLocalAddresses: false, resolve: dnsResolve },
        ignoreMXHosts,
        mxLastError,
        localHostname,
        mtaSts: {
            enabled: true,
            cache: stsCache,
            logger: entry => note(`mx-connect ${entry.msg}: ${entry.hostname}[${entry.host}] mode=${entry.mode} testing=${entry.testing}`)
        },
        connectError: (err, opts, connOpts) => {
            facts.mx.push(`${connOpts.host}:${connOpts.port} ${err.category || ''} ${err.message}`);
            note(`mx-connect CONNFAIL ${connOpts.host}:${connOpts.port}: ${err.message}`);
        }
    };
    mxConnect(mxOptions, (err, mx) => {
        if (err) {
            note(`mx-connect ERRCONNECT: ${err.message}`);
            return decide(err);
        }
        const enforceTLS = (mx.policyMatch && mx.policyMatch.mode === 'enforce') || false;
        if (enforceTLS && ignoreTLS) ignoreTLS = false;
        const match = mx.policyMatch ? `policy ${mx.policyMatch.mode}${mx.policyMatch.valid ? ' match' : ' no-match'}` : 'no policy check';
        note(`mx-connect CONNECTED ${mx.hostname}[${mx.host}]:${smtpPort} (${match}); enforceTLS=${enforceTLS} ignoreTLS=${ignoreTLS}`);
        deliver(mx, enforceTLS, match);
    });
}

function deliver(mx, enforceTLS, match) {
    const transcript = [];
    const log = level => (meta, ...a) => transcript.push(`${level} ${a.join(' ')}`);
    const connection = new SMTPConnection({
        servername: mx.hostname,
        host: mx.host,
        port: smtpPort,
        connection: mx.socket,
        name: localHostname,
        ignoreTLS,
        opportunisticTLS: !enforceTLS,
        secure: false,
        connectionTimeout: 5 * 60 * 1000,
        greetingTimeout: 2 * 60 * 1000,
        tls: {
            servername: mx.hostname,
            rejectUnauthorized: enforceTLS,
            minVersion: enforceTLS ? 'TLSv1.2' : 'TLSv1',
            // Configuration, not ZoneMTA's default: trust the world's CA only.
            ca: caPem
        },
        transactionLog: true,
        logger: { info: log('INF'), debug: log('DBG'), error: log('ERR') }
    });
    const mxLabel = `${mx.hostname}[${mx.host}] ${match}`;
    let returned = false;

    let sending = false;
    const onError = err => {
        connection.connected = false;
        if (sending) {
            // Sender#sendMessage's own handler: an error during the transaction.
            sending = false;
            facts.smtp.push(`${mx.hostname}: ${err.response || err.message}`);
            return decide(err);
        }
        if (returned) return;
        returned = true;
        if (/disconnected\s+before\s+secure\s+TLS\s+connection\s+was\s+established/i.test(err.message) || err.cert) {
            if (enforceTLS) {
                err.response = `Policy error: ${POLICY_RESPONSE}${err.reason ? `. ${err.reason}` : ''}`;
                err.category = 'policy';
                err.temporary = false;
            } else {
                err.code = 'ETLS';
            }
        }
        err.response = err.response || `Network error: Error connecting to ${mx.host}. ${err.message}`;
        err.category = err.category || 'network';
        if (typeof err.temporary !== 'boolean') err.temporary = true;
        facts.mx.push(`${mxLabel}: ${err.code || ''} ${err.message}`);
        note(`smtp-connection error on ${mx.hostname}[${mx.host}]: ${err.code || ''} ${err.message}`);
        if ((err.code === 'ETLS' || /SSL23_GET_SERVER_HELLO|\/deps\/openssl|ssl3_check|ssl3_get_record|SSL routines/i.test(err.message) ||
            err.code === 'ECONNRESET') && !ignoreTLS && !enforceTLS) {
            note('STARTTLS failed: ZoneMTA retries the domain without TLS');
            ignoreTLS = true;
            return tryConnect();
        }
        if (err.code === 'ETIMEDOUT') {
            ignoreMXHosts.push(mx.host);
            mxLastError = err;
            return tryConnect();
        }
        return decide(err);
    };
    connection.once('error', onError);
    connection.once('end', () => {
        if (returned) return;
        setTimeout(() => {
            if (returned) return;
            const err = new Error('Unexpected socket close');
            if (connection._socket && (connection._socket.encrypted || connection._socket.upgrading)) err.code = 'ETLS';
            onError(err);
        }, 1000).unref();
    });

    connection.connect(() => {
        if (returned) return connection.close();
        const sock = connection._socket;
        const tlsFact = connection.secure
            ? `${sock.getProtocol()} authorized=${sock.authorized}${sock.authorizationError ? ' (' + sock.authorizationError + ')' : ''}`
            : 'plaintext';
        note(`connected to ${mx.hostname}[${mx.host}]: ${tlsFact}`);
        if (enforceTLS && !connection.secure) {
            returned = true;
            connection.close();
            const err = new Error('TLS is required');
            err.response = `Policy error: ${POLICY_RESPONSE}`;
            err.category = 'policy';
            facts.mx.push(`${mxLabel}: no TLS under enforce`);
            return decide(err);
        }
        returned = true;
        connection.connected = true;
        sending = true;
        connection.send({ from, to: [rcpt] }, message(), (err, info) => {
            if (!sending) return;
            sending = false;
            if (err) {
                facts.smtp.push(`${mx.hostname}: ${err.response || err.message}`);
                connection.close();
                return decide(err);
            }
            facts.mx.push(`${mxLabel}: delivered over ${tlsFact}`);
            connection.quit();
            finish(EX_OK, `delivered to ${mx.hostname}[${mx.host}] over ${tlsFact}: ${bounces.formatSMTPResponse(info.response)}`);
        });
    });
}

process.on('uncaughtException', err => finish(EX_SOFTWARE, `adapter failed: ${err.stack || err}`));
process.on('unhandledRejection', err => finish(EX_SOFTWARE, `adapter failed: ${(err && err.stack) || err}`));
tryConnect();
