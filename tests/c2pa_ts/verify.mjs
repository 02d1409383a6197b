#!/usr/bin/env node
// Independent C2PA verifier for the tests: @trustnxt/c2pa-ts (pure TypeScript, not c2pa-rs).
//
//   node tests/c2pa_ts/verify.mjs FILE [--anchor CA.pem] [--widen-bmff-brands]
//
// Prints ONE JSON object on stdout:
//   {"manifest": bool, "valid": bool, "trusted": bool|null, "actions": [...],
//    "digitalSourceType": str|null, "signer": str|null, "errors": [...], "checks": [...], "format": str|null}
//
// manifest: the file carries a C2PA manifest store that c2pa-ts could find.
// valid:    c2pa-ts validated the manifest store with no error status (claim signature, hashed assertion
//           URIs, hard binding i.e. data hash / BMFF hash over the asset bytes, ingredients), and its success
//           codes show that the claim signature and a hard binding were really checked.
// trusted:  null without --anchor. With --anchor: valid AND the signing certificate chains (via the
//           certificates in the COSE x5chain) to one of the PEM certificates in CA.pem. c2pa-ts 0.9.4 does
//           NOT implement chain-of-trust validation (its README says so, and its "signingCredential.trusted"
//           status only means the certificate profile is acceptable), so this chain check is done here
//           with Node's own X.509 code (node:crypto), not by c2pa-ts and not by c2pa-rs.
// errors:   the failure status codes from c2pa-ts (e.g. "assertion.dataHash.mismatch"), plus ours.
// checks:   the distinct success status codes from c2pa-ts (e.g. "claimSignature.validated",
//           "assertion.dataHash.match"). c2pa-ts's own "signingCredential.trusted" only means the certificate
//           profile is acceptable, not that it chains to an anchor; see "trusted" for that.
// format:   which c2pa-ts asset parser read the file ("jpeg", "png", "bmff", "mp3"), or null when c2pa-ts
//           cannot read the format; then errors holds "format.unsupported: <why>" and manifest is false
//           (meaning: none that c2pa-ts could see, not: the file has none).
//
// --widen-bmff-brands: c2pa-ts 0.9.4 does not declare MP4 support (its BMFF class accepts only the HEIF brands
//           heic/mif1). This opt-in adds the file's own major brand (e.g. 'isom') to that allowlist, so the
//           c2pa-ts BMFF parser and BMFF hash (v2/v3) validation run on the MP4 unchanged; "format" then says
//           "bmff (brand allowlist widened: isom)". It is an experiment outside c2pa-ts's stated support.
//
// Exit status: 0 when the JSON was printed (whatever the verdict), 2 on a usage or read error.

import { X509Certificate } from 'node:crypto';
import * as fs from 'node:fs/promises';

// Keep the whole reader in JavaScript: cbor-x (c2pa-ts's CBOR decoder) would otherwise load the optional
// native cbor-extract addon. Set before c2pa-ts (and so cbor-x) is loaded, hence the dynamic imports.
process.env.CBOR_NATIVE_ACCELERATION_DISABLED = 'true';
const { BMFF, JPEG, MP3, PNG } = await import('@trustnxt/c2pa-ts/asset');
const { SuperBox } = await import('@trustnxt/c2pa-ts/jumbf');
const { ActionAssertion, ManifestStore, ValidationResult } = await import('@trustnxt/c2pa-ts/manifest');

/** Success codes of the hard-binding assertions (hashes over the asset bytes) c2pa-ts can check. */
const HARD_BINDING_MATCHES = ['assertion.dataHash.match', 'assertion.bmffHash.match', 'assertion.boxesHash.match'];

function usage(message) {
    process.stderr.write(`${message}\nusage: node verify.mjs FILE [--anchor CA.pem] [--widen-bmff-brands]\n`);
    process.exit(2);
}

function parseArgs(argv) {
    let file = null;
    let anchor = null;
    let widen = false;
    for (let i = 0; i < argv.length; i++) {
        if (argv[i] === '--widen-bmff-brands') {
            widen = true;
        } else if (argv[i] === '--anchor') {
            anchor = argv[++i];
            if (!anchor) usage('--anchor needs a PEM file');
        } else if (file === null) {
            file = argv[i];
        } else {
            usage(`unexpected argument: ${argv[i]}`);
        }
    }
    if (file === null) usage('missing FILE');
    return { file, anchor, widen };
}

/** True when the buffer starts with an ISO BMFF 'ftyp' box (MP4, MOV, HEIF, ...). */
function hasFtyp(buf) {
    return buf.length >= 12 && buf.toString('latin1', 4, 8) === 'ftyp';
}

/**
 * The c2pa-ts asset parser for the file, or null with the reason. c2pa-ts 0.9.4 reads JPEG, PNG, MP3 and
 * HEIF only: its BMFF class accepts just the 'heic'/'mif1' brands (BMFF.canRead, checked again by its
 * constructor), so an MP4 ('isom', 'mp41', ...) is refused and reported as unsupported, not forced through.
 */
function openAsset(buf, widen) {
    if (JPEG.canRead(buf)) return { asset: new JPEG(buf), format: 'jpeg' };
    if (PNG.canRead(buf)) return { asset: new PNG(buf), format: 'png' };
    if (BMFF.canRead(buf)) return { asset: new BMFF(buf), format: 'bmff' };
    if (MP3.canRead(buf)) return { asset: new MP3(buf), format: 'mp3' };
    if (hasFtyp(buf)) {
        const brand = buf.toString('latin1', 8, 12);
        if (widen) {
            BMFF.canReadBrands.add(brand); // public at run time, private in the .d.ts: see --widen-bmff-brands
            return { asset: new BMFF(buf), format: `bmff (brand allowlist widened: ${brand})` };
        }
        const reason = `ISO BMFF brand '${brand}': c2pa-ts BMFF reads only the HEIF brands heic/mif1`;
        return { asset: null, format: null, reason };
    }
    return { asset: null, format: null, reason: 'not a JPEG, PNG, HEIF or MP3 file' };
}

/** Common name of a certificate's subject (from Node's "CN=...\nO=..." form), or the whole subject. */
function commonName(certificate) {
    const subject = certificate.subject ?? '';
    const line = subject.split('\n').find((part) => part.startsWith('CN='));
    return line ? line.slice(3) : subject || null;
}

function toNodeCertificate(peculiarCertificate) {
    return new X509Certificate(Buffer.from(peculiarCertificate.rawData));
}

function isCurrent(certificate, now) {
    return new Date(certificate.validFrom) <= now && now <= new Date(certificate.validTo);
}

/** `issuer` issued `child`: names (and key identifiers) match, issuer is a current CA, `child`'s signature verifies. */
function issued(issuer, child, now) {
    return issuer.ca && isCurrent(issuer, now) && child.checkIssued(issuer) && child.verify(issuer.publicKey);
}

/** PEM text -> the certificates in it. */
function readPemCertificates(text) {
    const blocks = text.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
    return blocks.map((block) => new X509Certificate(block));
}

/** Does the signer certificate chain, through `chain`, to one of `anchors`? (each link's signature checked) */
function chainsToAnchor(leaf, chain, anchors, now) {
    if (!isCurrent(leaf, now)) return false;
    let current = leaf;
    const unused = [...chain];
    for (let depth = 0; depth <= chain.length; depth++) {
        if (anchors.some((anchor) => issued(anchor, current, now))) return true;
        const index = unused.findIndex(
            (candidate) => candidate.fingerprint256 !== current.fingerprint256 && issued(candidate, current, now),
        );
        if (index < 0) return false;
        current = unused.splice(index, 1)[0];
    }
    return false;
}

async function verify(file, anchorPath, widen) {
    const out = {
        manifest: false,
        valid: false,
        trusted: anchorPath ? false : null,
        actions: [],
        digitalSourceType: null,
        signer: null,
        errors: [],
        checks: [],
        format: null,
    };
    const buf = await fs.readFile(file);
    const anchors = anchorPath ? readPemCertificates(await fs.readFile(anchorPath, 'ascii')) : [];
    if (anchorPath && anchors.length === 0) usage(`no certificate in ${anchorPath}`);

    let opened;
    try {
        opened = openAsset(buf, widen);
    } catch (e) {
        out.errors.push(`asset.unreadable: ${e.message}`);
        return out;
    }
    out.format = opened.format;
    if (!opened.asset) {
        out.errors.push(`format.unsupported: ${opened.reason}`);
        return out;
    }
    const asset = opened.asset;
    const jumbf = asset.getManifestJUMBF();
    if (!jumbf) return out; // no manifest: nothing to validate
    out.manifest = true;

    let result;
    let manifest;
    try {
        const store = ManifestStore.read(SuperBox.fromBuffer(jumbf));
        manifest = store.getActiveManifest();
        result = await store.validate(asset);
    } catch (e) {
        result = ValidationResult.fromError(e);
    }
    out.errors.push(...result.statusEntries.filter((entry) => entry.success === false).map((entry) => entry.code));
    out.checks = [...new Set(result.statusEntries.filter((entry) => entry.success === true).map((entry) => entry.code))];
    // Valid only if nothing failed AND the signature and a hard binding (hash over the asset) were actually checked.
    const signed = out.checks.includes('claimSignature.validated');
    const bound = HARD_BINDING_MATCHES.some((code) => out.checks.includes(code));
    out.valid = result.isValid && out.errors.length === 0 && signed && bound;

    // What the active manifest claims.
    for (const assertion of manifest?.assertions?.assertions ?? []) {
        if (!(assertion instanceof ActionAssertion)) continue;
        for (const action of assertion.actions) {
            out.actions.push(action.action);
            if (action.digitalSourceType) out.digitalSourceType = action.digitalSourceType;
        }
    }
    const signature = manifest?.signature?.signatureData;
    if (signature?.certificate) {
        const leaf = toNodeCertificate(signature.certificate);
        out.signer = commonName(leaf);
        if (anchorPath) {
            const chain = (signature.chainCertificates ?? []).map(toNodeCertificate);
            const chained = chainsToAnchor(leaf, chain, anchors, new Date());
            if (!chained) out.errors.push('signingCredential.untrusted');
            out.trusted = out.valid && chained;
        }
    } else if (anchorPath) {
        out.errors.push('signingCredential.invalid');
    }
    return out;
}

const { file, anchor, widen } = parseArgs(process.argv.slice(2));
try {
    process.stdout.write(`${JSON.stringify(await verify(file, anchor, widen))}\n`);
} catch (e) {
    process.stderr.write(`verify.mjs: ${e.stack ?? e}\n`);
    process.exit(2);
}
