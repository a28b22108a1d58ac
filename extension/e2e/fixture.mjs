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

/** The second folder of the multi-root workspace. */
const SECOND_FILES = {
  'lib/mathutil.py': `"""Integer helpers."""


def greatest_common_divisor(a: int, b: int) -> int:
    """Euclid's algorithm: the largest integer dividing both a and b."""
    while b:
        a, b = b, a % b
    return abs(a)


def is_prime(n: int) -> bool:
    """True when n has no divisors other than 1 and itself."""
    if n < 2:
        return False
    return all(n % d for d in range(2, int(n ** 0.5) + 1))
`,
};

export const FOLDERS = { first: 'fixture-project', second: 'second-project', third: 'added-later' };

/** A folder added to the workspace while VS Code is open. */
export const THIRD = {
  folder: FOLDERS.third,
  file: 'units.py',
  symbol: 'celsius_to_fahrenheit',
  query: 'convert a temperature from celsius to fahrenheit',
  code: `def celsius_to_fahrenheit(celsius: float) -> float:
    """Convert degrees Celsius to degrees Fahrenheit."""
    return celsius * 9 / 5 + 32
`,
};
export const WORKSPACE_FILE = 'fixtures.code-workspace';

/** What the first search must find (in the first folder). */
export const FIRST = {
  query: 'distance between two places on earth from their coordinates',
  symbol: 'haversine_distance',
  folder: FOLDERS.first,
  file: 'src/geo.py',
};

/** Found in the second folder of the multi-root workspace. */
export const SECOND = {
  query: 'largest number that divides two integers',
  symbol: 'greatest_common_divisor',
  folder: FOLDERS.second,
  file: 'lib/mathutil.py',
};

/** A search restricted to the first folder's src/ from the explorer's context menu. */
export const IN_FOLDER = {
  folder: FOLDERS.first,
  dir: 'src',
  query: 'store a password securely',
  symbol: 'hashPassword',
};

/** The function added to an existing file on disk while VS Code is open. */
export const ADDED = {
  folder: FOLDERS.first,
  file: 'src/text.py',
  symbol: 'reverse_word_order',
  query: 'put the words of a sentence in reverse order',
  code: `

def reverse_word_order(sentence: str) -> str:
    """Return the sentence with its words in the opposite order."""
    return " ".join(reversed(sentence.split()))
`,
};

function writeFiles(root, files) {
  for (const [rel, text] of Object.entries(files)) {
    const file = path.join(root, rel);
    mkdirSync(path.dirname(file), { recursive: true });
    writeFileSync(file, text);
  }
}

/** Creates both folders and a .code-workspace file under `parent`; returns the workspace file. */
export function createFixture(parent) {
  writeFiles(path.join(parent, FOLDERS.first), FILES);
  writeFiles(path.join(parent, FOLDERS.second), SECOND_FILES);
  const file = path.join(parent, WORKSPACE_FILE);
  writeFileSync(
    file,
    JSON.stringify({ folders: [{ path: FOLDERS.first }, { path: FOLDERS.second }], settings: {} }, null, 2),
  );
  return file;
}

/** Creates the third folder and adds it to the .code-workspace file. */
export function addThirdFolder(parent) {
  writeFiles(path.join(parent, THIRD.folder), { [THIRD.file]: THIRD.code });
  const file = path.join(parent, WORKSPACE_FILE);
  const ws = JSON.parse(readFileSync(file, 'utf8'));
  ws.folders.push({ path: THIRD.folder });
  writeFileSync(file, JSON.stringify(ws, null, 2));
}

export function addFunction(parent) {
  appendFileSync(path.join(parent, ADDED.folder, ADDED.file), ADDED.code);
}

/** 1-based line of `def name` / `function name` in a fixture file. */
export function lineOf(parent, target, symbol = target.symbol) {
  const lines = readFileSync(path.join(parent, target.folder, target.file), 'utf8').split('\n');
  const i = lines.findIndex((l) => new RegExp(`\\b(def|function|class)\\s+${symbol}\\b`).test(l));
  if (i < 0) throw new Error(`${symbol} not found in ${target.file}`);
  return i + 1;
}
