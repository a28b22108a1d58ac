// The fixture workspace for the E2E test: a small project whose functions a natural-language
// query can find unambiguously, plus the edit that adds a new function later.
import { appendFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';

const FILES = {
  'README.md': '# Fixture project\n\nSmall utilities used by the codesearch VS Code E2E test.\n',
  'src/geo.py': `"""Geographic helpers."""
import math

EARTH_RADIUS_KM = 6371.0


def haversine_distance(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance in kilometres between two points given by latitude and longitude."""
    phi1, phi2 = math.radians(lat1), math.radians(lat2)
    dphi = math.radians(lat2 - lat1)
    dlmb = math.radians(lon2 - lon1)
    a = math.sin(dphi / 2) ** 2 + math.cos(phi1) * math.cos(phi2) * math.sin(dlmb / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(math.sqrt(a))


def bounding_box(points: list[tuple[float, float]]) -> tuple[float, float, float, float]:
    """The smallest rectangle (min_lat, min_lon, max_lat, max_lon) containing all points."""
    lats = [p[0] for p in points]
    lons = [p[1] for p in points]
    return min(lats), min(lons), max(lats), max(lons)
`,
  'src/text.py': `"""String utilities."""
import re


def slugify(title: str) -> str:
    """Turn a title into a lowercase, dash-separated URL slug."""
    return re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")


def strip_html_tags(html: str) -> str:
    """Remove every HTML tag and keep only the text."""
    return re.sub(r"<[^>]+>", "", html)
`,
  'src/net.py': `"""Networking helpers."""
import time
import urllib.request


def retry_with_backoff(fn, attempts: int = 5, base_delay: float = 0.5):
    """Call fn until it succeeds, sleeping exponentially longer after each failure."""
    for attempt in range(attempts):
        try:
            return fn()
        except Exception:
            if attempt == attempts - 1:
                raise
            time.sleep(base_delay * 2 ** attempt)


def download_file(url: str, destination: str) -> None:
    """Fetch a URL and write the response body to a local file."""
    with urllib.request.urlopen(url) as response, open(destination, "wb") as out:
        out.write(response.read())
`,
  'src/users.js': `const crypto = require('crypto');

/** Hash a password with a random salt using PBKDF2. */
function hashPassword(password) {
  const salt = crypto.randomBytes(16).toString('hex');
  const hash = crypto.pbkdf2Sync(password, salt, 100000, 64, 'sha512').toString('hex');
  return salt + ':' + hash;
}

/** Sort users by their last login time, most recent first. */
function sortUsersByLastLogin(users) {
  return [...users].sort((a, b) => b.lastLogin - a.lastLogin);
}

module.exports = { hashPassword, sortUsersByLastLogin };
`,
};

/** What the first search must find. */
export const FIRST = {
  query: 'distance between two places on earth from their coordinates',
  symbol: 'haversine_distance',
  file: 'src/geo.py',
};

/** The function added to an existing file on disk while VS Code is open. */
export const ADDED = {
  file: 'src/text.py',
  symbol: 'reverse_word_order',
  query: 'put the words of a sentence in reverse order',
  code: `

def reverse_word_order(sentence: str) -> str:
    """Return the sentence with its words in the opposite order."""
    return " ".join(reversed(sentence.split()))
`,
};

export function createFixture(root) {
  for (const [rel, text] of Object.entries(FILES)) {
    const file = path.join(root, rel);
    mkdirSync(path.dirname(file), { recursive: true });
    writeFileSync(file, text);
  }
  return root;
}

export function addFunction(root) {
  appendFileSync(path.join(root, ADDED.file), ADDED.code);
}

/** 1-based line of `def name` / `function name` in a fixture file. */
export function lineOf(root, rel, symbol) {
  const lines = readFileSync(path.join(root, rel), 'utf8').split('\n');
  const i = lines.findIndex((l) => new RegExp(`\\b(def|function|class)\\s+${symbol}\\b`).test(l));
  if (i < 0) throw new Error(`${symbol} not found in ${rel}`);
  return i + 1;
}
