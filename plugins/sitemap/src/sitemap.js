// Sitemaps (sitemaps.org protocol 0.9) written as a stream, without I/O of
// its own: `SitemapSet` takes URLs one at a time and writes them through the
// writers `open(name)` gives (an SDK ArtifactWriter in the connector, a fake
// in tests).
//
// One file, `sitemap.xml` (a <urlset>), while the URLs fit in one: at most
// `maxUrls` (50,000) and `maxBytes` (50 MB, 52,428,800 bytes, uncompressed).
// Past that, `sitemap.xml` becomes a <sitemapindex> of parts `sitemap-1.xml`,
// `sitemap-2.xml`…, each a <urlset> within the same limits. The first part
// is written to both `sitemap.xml` and `sitemap-1.xml` until it is full, so
// one pass over the records serves both cases: a catalogue that fits drops
// `sitemap-1.xml`, a larger one rewrites `sitemap.xml` as the index.

export const MAX_URLS = 50000;
export const MAX_BYTES = 52428800;
export const NS = 'http://www.sitemaps.org/schemas/sitemap/0.9';

const URLSET_HEAD = `<?xml version="1.0" encoding="UTF-8"?>\n<urlset xmlns="${NS}">\n`;
const URLSET_TAIL = '</urlset>\n';
const INDEX_HEAD = `<?xml version="1.0" encoding="UTF-8"?>\n<sitemapindex xmlns="${NS}">\n`;
const INDEX_TAIL = '</sitemapindex>\n';

const ENTITIES = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&apos;' };

/** `text` with the five XML entities escaped and characters XML cannot carry dropped. */
export function escapeXml(text) {
  return String(text)
    .replace(/[\u0000-\u0008\u000b\u000c\u000e-\u001f\ufffe\uffff]/g, '')
    .replace(/[&<>"']/g, (c) => ENTITIES[c]);
}

/** A URL as a sitemap wants it: characters outside RFC 3986 percent-encoded. */
export function encodeUrl(url) {
  return String(url).replace(/[^A-Za-z0-9\-._~:/?#[\]@!$&'()*+,;=%]/gu, (c) => encodeURIComponent(c));
}

/** W3C Datetime for `lastmod`: an RFC 3339 string as given, else seconds since the epoch. */
export function lastmod(updatedAt, seconds) {
  if (typeof updatedAt === 'string' && /^\d{4}-\d{2}-\d{2}(T[0-9:.]+(Z|[+-]\d{2}:\d{2}))?$/.test(updatedAt)) {
    return updatedAt;
  }
  return new Date(Number(seconds) * 1000).toISOString().replace('.000Z', 'Z');
}

/** The length of ASCII-only `text` in bytes; URLs here are, once encoded. */
const TAIL_BYTES = URLSET_TAIL.length;
const HEAD_BYTES = URLSET_HEAD.length;

export class SitemapSet {
  /**
   * @param open       `(name) => writer` with `write(text|bytes)`, `close()`, `discard()`
   * @param partUrl    `(name) => url` of a part, for the index's <loc>
   * The limits (50,000 URLs, 50 MB a file, 50,000 parts) can be lowered for tests.
   */
  constructor({ open, partUrl, maxUrls = MAX_URLS, maxBytes = MAX_BYTES, maxParts = MAX_URLS }) {
    this.open = open;
    this.partUrl = partUrl;
    this.maxUrls = maxUrls;
    this.maxBytes = maxBytes;
    this.maxParts = maxParts;
    this.urls = 0;
    this.parts = []; // { name, lastmod } of each finished part
    this.main = open('sitemap.xml');
    this.main.write(URLSET_HEAD);
    this.startPart();
  }

  startPart() {
    this.part = this.open(`sitemap-${this.parts.length + 1}.xml`);
    this.part.write(URLSET_HEAD);
    this.partUrls = 0;
    this.partBytes = HEAD_BYTES;
    this.partLastmod = '';
  }

  endPart() {
    this.part.write(URLSET_TAIL);
    this.part.close();
    this.parts.push({ name: `sitemap-${this.parts.length + 1}.xml`, lastmod: this.partLastmod });
  }

  /** Adds one URL (absolute) with its lastmod (W3C Datetime, may be empty). */
  add(loc, modified) {
    const entry =
      `<url><loc>${escapeXml(encodeUrl(loc))}</loc>` + (modified ? `<lastmod>${escapeXml(modified)}</lastmod>` : '') + '</url>\n';
    // Every character of an entry is ASCII (encodeUrl percent-encodes the
    // rest; lastmod is digits and punctuation), so its length is its bytes.
    const bytes = entry.length;
    if (HEAD_BYTES + bytes + TAIL_BYTES > this.maxBytes) {
      throw new Error(`a URL entry of ${bytes} bytes cannot fit in a sitemap of ${this.maxBytes} bytes`);
    }
    if (this.partUrls === this.maxUrls || this.partBytes + bytes + TAIL_BYTES > this.maxBytes) {
      if (this.main && this.parts.length === 0) {
        // The first part is full: sitemap.xml will be the index.
        this.main.discard();
        this.main = null;
      }
      this.endPart();
      if (this.parts.length >= this.maxParts) {
        throw new Error(`more than ${this.maxParts} sitemap parts`);
      }
      this.startPart();
    }
    this.part.write(entry, bytes);
    if (this.main) this.main.write(entry, bytes);
    this.partUrls += 1;
    this.partBytes += bytes;
    this.urls += 1;
    if (modified > this.partLastmod) this.partLastmod = modified;
  }

  /** Ends the files; returns `{ urls, parts }` (parts 0: a single sitemap.xml). */
  finish() {
    if (this.main) {
      this.main.write(URLSET_TAIL);
      this.main.close();
      this.part.discard();
      return { urls: this.urls, parts: 0 };
    }
    this.endPart();
    const index = this.open('sitemap.xml');
    index.write(INDEX_HEAD);
    for (const { name, lastmod: modified } of this.parts) {
      index.write(
        `<sitemap><loc>${escapeXml(encodeUrl(this.partUrl(name)))}</loc>` +
          (modified ? `<lastmod>${escapeXml(modified)}</lastmod>` : '') +
          '</sitemap>\n',
      );
    }
    index.write(INDEX_TAIL);
    index.close();
    return { urls: this.urls, parts: this.parts.length };
  }

  /** Drops everything begun (a failed run). */
  abandon() {
    for (const w of [this.main, this.part]) {
      try {
        w?.discard();
      } catch {
        // the run fails anyway
      }
    }
  }
}

/** Where a record's page is: its own url on the shop's host, else the fallback path. */
export function locationOf(base, url, fallbackPath) {
  const origin = base.match(/^https?:\/\/[^/?#]+/i)[0].toLowerCase();
  if (typeof url === 'string' && url.length) {
    const own = url.match(/^https?:\/\/[^/?#]+/i);
    if (own && own[0].toLowerCase() === origin) return url;
    return null; // another host: a sitemap lists one host's URLs only
  }
  return `${base.replace(/\/+$/, '')}${fallbackPath}`;
}
