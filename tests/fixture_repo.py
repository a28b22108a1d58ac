"""A small multi-language repository with meaningful code, built inside each test."""

from __future__ import annotations

import subprocess
from pathlib import Path

FILES: dict[str, str] = {
    "src/http/retry.py": '''"""Retry policy for HTTP requests."""

import random
import time


def parse_retry_after(header: str) -> float:
    """Parse a Retry-After header (seconds) and return how long to wait."""
    value = header.strip()
    if not value:
        return 0.0
    return max(0.0, float(value))


def backoff_delay(attempt: int, base: float = 0.5, cap: float = 30.0) -> float:
    """Exponential backoff with full jitter for the given retry attempt."""
    return random.uniform(0, min(cap, base * 2 ** attempt))


class RetryingClient:
    """Wraps a client and retries failed requests."""

    def __init__(self, client, attempts: int = 3):
        self.client = client
        self.attempts = attempts

    def send(self, request):
        for attempt in range(self.attempts):
            response = self.client.send(request)
            if response.status != 503:
                return response
            time.sleep(parse_retry_after(response.headers.get("Retry-After", "1")))
        return response
''',
    "src/http/pool.py": '''"""A pool of reusable sockets."""

import socket


class ConnectionPool:
    """Keeps idle connections per host so that requests reuse open sockets."""

    def __init__(self, max_idle: int = 10):
        self.max_idle = max_idle
        self._idle: dict[str, list[socket.socket]] = {}

    def acquire(self, host: str, port: int) -> socket.socket:
        """Reuse an idle socket for the host, or open a new connection."""
        idle = self._idle.get(host)
        if idle:
            return idle.pop()
        return socket.create_connection((host, port))

    def release(self, host: str, sock: socket.socket) -> None:
        """Return a socket to the pool, closing it when the pool is full."""
        idle = self._idle.setdefault(host, [])
        if len(idle) >= self.max_idle:
            sock.close()
        else:
            idle.append(sock)
''',
    "web/src/cart.ts": '''export interface Item {
  sku: string;
  price: number;
  quantity: number;
}

/** Sum the price of every item in the shopping cart, applying a discount code. */
export function cartTotal(items: Item[], discountPercent: number = 0): number {
  const subtotal = items.reduce((sum, item) => sum + item.price * item.quantity, 0);
  return subtotal * (1 - discountPercent / 100);
}

export class ShoppingCart {
  private items: Item[] = [];

  addItem(item: Item): void {
    this.items.push(item);
  }

  removeItem(sku: string): void {
    this.items = this.items.filter((i) => i.sku !== sku);
  }
}
''',
    "web/src/format.js": '''// Formatting helpers for the UI.

/**
 * Format a date as YYYY-MM-DD.
 */
function formatIsoDate(date) {
  const pad = (n) => String(n).padStart(2, "0");
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}`;
}

function escapeHtml(text) {
  return text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
}

module.exports = { formatIsoDate, escapeHtml };
''',
    "cmd/server/main.go": '''package main

import (
	"fmt"
	"net/http"
)

// healthHandler reports that the service is alive.
func healthHandler(w http.ResponseWriter, r *http.Request) {
	fmt.Fprintln(w, "ok")
}

func main() {
	http.HandleFunc("/healthz", healthHandler)
	http.ListenAndServe(":8080", nil)
}
''',
    "crates/hash/src/lib.rs": '''/// Compute the FNV-1a 64-bit hash of a byte slice.
pub fn fnv1a_hash(data: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf29ce484222325;
    for byte in data {
        hash ^= *byte as u64;
        hash = hash.wrapping_mul(0x100000001b3);
    }
    hash
}

pub struct LruCache {
    capacity: usize,
}

impl LruCache {
    /// Create an LRU cache that evicts the least recently used entry.
    pub fn new(capacity: usize) -> Self {
        LruCache { capacity }
    }
}
''',
    "java/src/main/java/com/acme/Matrix.java": '''package com.acme;

public class Matrix {
    /** Multiply two square matrices. */
    public static double[][] multiply(double[][] a, double[][] b) {
        int n = a.length;
        double[][] c = new double[n][n];
        for (int i = 0; i < n; i++)
            for (int j = 0; j < n; j++)
                for (int k = 0; k < n; k++)
                    c[i][j] += a[i][k] * b[k][j];
        return c;
    }
}
''',
    "tests/test_retry.py": '''from src.http.retry import parse_retry_after


def test_parse_retry_after():
    assert parse_retry_after("3") == 3.0
''',
    "scripts/deploy.sh": '''#!/bin/bash
# Deploy the service to production.
deploy_service() {
  rsync -az build/ server:/srv/app/
  ssh server systemctl restart app
}
deploy_service
''',
    "README.md": "# Demo repository\n\nA tiny repository used by codesearch's tests.\n",
    ".gitignore": "build/\n*.log\n",
    "build/generated.py": "def should_not_be_indexed():\n    pass\n",
    "debug.log": "noise\n",
}


def make_repo(root: Path, files: dict[str, str] | None = None, git: bool = False) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for rel, text in (files or FILES).items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    if git:
        subprocess.run(["git", "init", "-q", str(root)], check=True)
    return root
