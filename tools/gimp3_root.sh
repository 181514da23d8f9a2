#!/usr/bin/env bash
# gimp3_root.sh — provide GIMP 3.0.x (from Debian 13 "trixie") or GIMP 3.2.x (from Debian testing
# "forky") on a Debian 12 machine.
#
# Debian 12 only ships GIMP 2.10, which has no Python 3 plug-in support, so we bootstrap a
# minimal Debian chroot holding GIMP 3, PyGObject, pyzmq and Xvfb. Each version has its own chroot,
# cached OUTSIDE the repository (default /var/cache/deep-dream-gimp/trixie-root for 3.0 and
# forky-root for 3.2), so only the first run pays the few minutes the build takes. On a Debian
# machine that already has the wanted GIMP installed, no chroot is used at all: `path` prints "/"
# and `run` runs the command directly.
#
# See --help for the interface. Background: /work/shared/gimp3-notes.md §0, §5 and §7.

set -euo pipefail

PROG=${0##*/}
CACHE_DIR=/var/cache/deep-dream-gimp

# The GIMP version (--gimp or GIMP3_VERSION; 3.0 by default) decides the Debian suite, the
# debootstrap script, the root and the console binary. Debian 12's debootstrap has no script for
# forky; the sid one bootstraps any unstable-like suite. The testing archive's Release files may be
# past their Valid-Until date (as they are for the host's apt), so that check is off in its root.
GIMP_VERSION=${GIMP3_VERSION:-3.0}
# Each version has its own root variable: one root for both would be "repaired" into the other.
select_version() { # VERSION -> sets SUITE, DEBOOTSTRAP_SCRIPT, DEFAULT_ROOT, ROOT, GIMP_CONSOLE, NO_VALID_UNTIL
    case $1 in
        3.0) SUITE=trixie DEBOOTSTRAP_SCRIPT=trixie NO_VALID_UNTIL=0 ROOT=${GIMP3_ROOT:-} ;;
        3.2) SUITE=forky DEBOOTSTRAP_SCRIPT=sid NO_VALID_UNTIL=1 ROOT=${GIMP32_ROOT:-} ;;
        *) printf '%s: error: unknown GIMP version %s (known: 3.0, 3.2)\n' "$PROG" "$1" >&2; exit 2 ;;
    esac
    GIMP_VERSION=$1
    DEFAULT_ROOT=$CACHE_DIR/$SUITE-root
    GIMP_CONSOLE=gimp-console-$1
    ROOT=${ROOT:-$DEFAULT_ROOT}
    ROOT=${ROOT%/}
    [[ -n $ROOT ]] || ROOT=/   # GIMP3_ROOT=/ is nonsense for a chroot; caught by require_sane_root
}
if [[ ${1:-} == --gimp ]]; then
    GIMP_VERSION=${2:-}
    shift 2 || { printf '%s: error: --gimp needs a version (3.0 or 3.2)\n' "$PROG" >&2; exit 2; }
elif [[ ${1:-} == --gimp=* ]]; then
    GIMP_VERSION=${1#--gimp=}
    shift
fi
select_version "$GIMP_VERSION"

# Everything the root must contain. gimp + python3-gi + gir1.2-gimp-3.0 give Python plug-ins and
# python-fu-eval batch mode; python3-zmq is the plug-in <-> backend transport; xvfb + xauth run
# the GUI without a display; x11-apps (xwd) + netpbm (xwdtopnm, pnmtopng) take PNG screenshots of
# the virtual screen, and are much lighter than imagemagick; xdotool (~250 kB with libxdo3 and
# libxtst6) finds windows and presses keys in them for the interactive GUI test.
PACKAGES=(gimp python3-gi gir1.2-gimp-3.0 python3-zmq xvfb xauth x11-apps netpbm xdotool)


# Clean PATH used inside the root (and natively): the plug-in's `#!/usr/bin/env python3` must
# find the distribution's python3 (the one with `gi`), never a virtual environment's.
CLEAN_PATH=/usr/sbin:/usr/bin:/sbin:/bin

# Pseudo file systems mounted into the root for `run`, in mount order (unmounted in reverse).
# A plain bind of /dev does not bring the host's /dev/shm; Xvfb and GLib want a writable one,
# so a private tmpfs goes there. /dev/pts and /sys are not needed by gimp-console or Xvfb.
CHROOT_MOUNTS=(proc dev dev/shm)

usage() {
    cat <<EOF
Usage: $PROG [--gimp 3.0|3.2] [ensure|path|console|run -- CMD [ARGS...]|umount|-h|--help]

Provision GIMP 3.0.x from Debian 13 "trixie" (the default) or GIMP 3.2.x from Debian testing
"forky" in a cached chroot, one root per version, and run commands in it.

Options:
  --gimp VERSION  3.0 (default; root $CACHE_DIR/trixie-root, binary gimp-console-3.0)
                  or 3.2 (root $CACHE_DIR/forky-root, binary gimp-console-3.2; bootstrapped
                  with debootstrap's sid script, Release files' Valid-Until not checked).
                  Must come first. Same as GIMP3_VERSION=VERSION.

Subcommands (for the selected version; this is $GIMP_VERSION):
  ensure        (default) Make sure the root exists and is complete: $GIMP_CONSOLE runs and
                ${PACKAGES[*]}
                are installed. Fast (about a second) when the cached root is already fine.
                Otherwise (as root): install debootstrap on the host if needed, bootstrap
                '$SUITE' into a temporary directory next to the root, install the packages,
                and rename it into place atomically (an interrupted build never looks complete).
  path          Run 'ensure' (quietly), then print the root directory on stdout ("/" when this
                GIMP version is installed natively).
  console       Print the name of the GIMP console binary ($GIMP_CONSOLE), for 'run'.
  run -- CMD... Run CMD inside the root with a clean environment:
                  PATH=$CLEAN_PATH HOME=/root LANG=C.UTF-8
                plus every variable named in \$GIMP3_PASS_ENV (space separated) that is set.
                proc, /dev and a tmpfs /dev/shm are mounted for the duration and always
                unmounted afterwards. stdin/stdout/stderr pass through; the exit status is CMD's.
                Paths are the root's: /tmp inside is \$ROOT/tmp on the host.
  umount        Unmount anything this script mounted under the root (after a crash/kill -9).

Environment:
  GIMP3_VERSION   GIMP version, as --gimp (default 3.0)
  GIMP3_ROOT      cached root directory for GIMP 3.0 (default $CACHE_DIR/trixie-root)
  GIMP32_ROOT     cached root directory for GIMP 3.2 (default $CACHE_DIR/forky-root)
  GIMP3_PASS_ENV  names of variables to pass into 'run', e.g. "GIMP3_DIRECTORY GIMP3_CACHEDIR DISPLAY"
  GIMP3_MIRROR    Debian mirror URL for the build; default: the machine's own apt sources
  GIMP3_NATIVE=0  use the chroot even on a Debian host that has this GIMP installed

Examples:
  sudo $PROG ensure
  sudo $PROG --gimp 3.2 ensure
  sudo GIMP3_PASS_ENV=GIMP3_DIRECTORY GIMP3_DIRECTORY=/tmp/gp $PROG run -- \\
      gimp-console-3.0 -i -d -f --batch-interpreter=python-fu-eval -b 'print(Gimp.version())' --quit
EOF
}

# ----------------------------------------------------------------------------------------------
# Small helpers

# Messages go to the stderr the script was started with, even while a build step has its
# output redirected to the build log (a trap can fire inside such a redirection).
exec {MSG_FD}>&2
log() { printf '%s: %s\n' "$PROG" "$*" >&"$MSG_FD"; }
die() { log "error: $*"; exit 1; }

now_ns() { date +%s%N; }
# elapsed START_NS -> "2m 31.4s" / "0.4s"
elapsed() {
    local ds=$(( ($(now_ns) - $1) / 100000000 ))   # tenths of a second
    if (( ds >= 600 )); then
        printf '%dm %d.%ds' $((ds / 600)) $((ds % 600 / 10)) $((ds % 10))
    else
        printf '%d.%ds' $((ds / 10)) $((ds % 10))
    fi
}

require_root_user() {
    (( EUID == 0 )) || die "this needs root (chroot, mount, debootstrap); re-run with sudo"
}

require_sane_root() {
    case $ROOT in
        /*) ;;
        *) die "GIMP3_ROOT must be an absolute path (got '$ROOT')" ;;
    esac
    # Guard the rm -rf / mount code against obviously wrong values.
    case $ROOT in
        / | /bin | /boot | /dev | /etc | /home | /lib* | /opt | /proc | /root | /run | /sbin \
            | /srv | /sys | /tmp | /usr | /var | /var/cache)
            die "refusing to use '$ROOT' as the GIMP root" ;;
    esac
}

os_release_field() { # FIELD -> value from /etc/os-release (empty if absent)
    [[ -r /etc/os-release ]] || return 0
    (
        # shellcheck disable=SC1091
        . /etc/os-release
        printf '%s\n' "${!1:-}"
    )
}

# True on Debian 13 "trixie" or newer (forky, duke, sid, any VERSION_ID >= 13).
host_is_trixie_or_newer() {
    [[ $(os_release_field ID) == debian ]] || return 1
    local ver code
    ver=$(os_release_field VERSION_ID)
    code=$(os_release_field VERSION_CODENAME)
    [[ $ver =~ ^[0-9]+$ ]] && (( ver >= 13 )) && return 0
    case $code in trixie | forky | duke | sid) return 0 ;; esac
    return 1
}

# find_gimp_console PREFIX -> name of the selected version's console binary under PREFIX/usr/bin.
# Only the versioned name: gimp-console-3 and gimp-console exist for every 3.x.
find_gimp_console() {
    [[ -x $1/usr/bin/$GIMP_CONSOLE ]] || return 1
    printf '%s\n' "$GIMP_CONSOLE"
}

# missing_packages ADMINDIR -> names of PACKAGES not fully installed in that dpkg database
missing_packages() {
    local p status
    for p in "${PACKAGES[@]}"; do
        status=$(dpkg-query --admindir="$1" -W -f='${db:Status-Abbrev}' "$p" 2>/dev/null || true)
        [[ $status == "ii " ]] || printf '%s\n' "$p"
    done
}

# Native mode: a Debian 13+ host with GIMP 3 already installed needs no chroot.
native_mode() {
    [[ ${GIMP3_NATIVE:-1} != 0 ]] && host_is_trixie_or_newer && find_gimp_console "" >/dev/null
}

# Environment for the command: clean, plus the variables listed in GIMP3_PASS_ENV.
# build_env HOME_DIR -> fills the global array CMD_ENV
build_env() {
    CMD_ENV=("PATH=$CLEAN_PATH" "HOME=$1" "LANG=C.UTF-8")
    local name
    for name in ${GIMP3_PASS_ENV:-}; do
        [[ $name =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]] || die "GIMP3_PASS_ENV: bad variable name '$name'"
        if [[ -n ${!name+set} ]]; then
            CMD_ENV+=("$name=${!name}")
        fi
    done
}

# ----------------------------------------------------------------------------------------------
# Mounts. Everything is checked with mountpoint/findmnt, never assumed.

# mounts_under DIR -> mount targets at or below DIR, deepest first
mounts_under() {
    local dir=$1 t
    findmnt -rn -o TARGET | while IFS= read -r t; do
        t=$(printf '%b' "$t")   # findmnt -r escapes blanks etc. as \xNN
        if [[ $t == "$dir" || $t == "$dir"/* ]]; then
            printf '%s\n' "$t"
        fi
    done | LC_ALL=C sort -r   # reverse byte order puts children before their parents
}

# mount_chroot_fs DIR: mount proc, /dev and /dev/shm into DIR (idempotent)
mount_chroot_fs() {
    local r=$1
    if ! mountpoint -q "$r/proc"; then
        mount -t proc proc "$r/proc"
    fi
    if ! mountpoint -q "$r/dev"; then
        mount --bind /dev "$r/dev"
        # On systemd hosts / is a shared mount: without this, the tmpfs we put on
        # $r/dev/shm would propagate back and cover the host's own /dev/shm.
        mount --make-private "$r/dev"
    fi
    if ! mountpoint -q "$r/dev/shm"; then
        # $r/dev/shm is the host's devtmpfs directory here; mounting over it writes nothing there.
        mount -t tmpfs -o mode=1777,nosuid,nodev,size=512m shm "$r/dev/shm"
    fi
}

chroot_fs_mounted() {
    local m
    for m in "${CHROOT_MOUNTS[@]}"; do
        mountpoint -q "$1/$m" || return 1
    done
}

# umount_all DIR: unmount everything mounted at or below DIR. Returns non-zero if anything is
# still mounted afterwards.
umount_all() {
    local dir=$1 t left
    while IFS= read -r t; do
        [[ -n $t ]] || continue
        if ! umount "$t" 2>/dev/null; then
            # Busy: usually a process still running inside (e.g. a forgotten Xvfb). Detach
            # lazily so nothing stays visible, and say so.
            log "warning: $t is busy; detaching it lazily (a process inside the root still uses it)"
            umount -l "$t" || true
        fi
    done < <(mounts_under "$dir")
    left=$(mounts_under "$dir")
    if [[ -n $left ]]; then
        log "still mounted: $left"
        return 1
    fi
}

# safe_rmtree DIR: delete DIR, but never while anything is mounted below it. (rm -rf through a
# bind-mounted /dev deletes the HOST's device nodes.) --one-file-system is a second guard.
safe_rmtree() {
    local dir=$1
    [[ -e $dir ]] || return 0
    case $dir in
        "$ROOT" | "$ROOT".*) ;;
        *) die "internal: refusing to delete '$dir'" ;;
    esac
    umount_all "$dir" || die "not deleting $dir: something is still mounted in it"
    [[ -z $(mounts_under "$dir") ]] || die "not deleting $dir: something is still mounted in it"
    rm -rf --one-file-system -- "$dir"
}

# ----------------------------------------------------------------------------------------------
# Building the root

# Print the URI of the machine's main Debian archive, read from its apt sources: the first
# "deb" source whose suite is the host's own codename (not -security/-updates/-backports),
# else the first one whose suite has no suffix and whose path ends in /debian.
detect_mirror() {
    if [[ -n ${GIMP3_MIRROR:-} ]]; then
        printf '%s\n' "$GIMP3_MIRROR"
        return 0
    fi
    local codename candidates uri suite
    codename=$(os_release_field VERSION_CODENAME)
    # "URI SUITE" pairs from deb822 (*.sources) and one-line (*.list) files, in apt's order.
    candidates=$(
        shopt -s nullglob
        files=(/etc/apt/sources.list.d/*.sources)
        if (( ${#files[@]} )); then
            awk '
                function flush(  n, m, i, j, U, S) {
                    if (types ~ /(^|[ \t])deb([ \t]|$)/ && tolower(enabled) != "no") {
                        n = split(uris, U, /[ \t]+/); m = split(suites, S, /[ \t]+/)
                        for (i = 1; i <= n; i++) for (j = 1; j <= m; j++)
                            if (U[i] != "" && S[j] != "") print U[i], S[j]
                    }
                    types = uris = suites = enabled = ""
                }
                FNR == 1 && NR > 1 { flush() }
                /^[ \t]*#/ { next }
                /^[ \t]*$/ { flush(); next }
                /^[A-Za-z0-9-]+:/ {
                    key = tolower($0); sub(/:.*/, "", key)
                    val = $0; sub(/^[^:]*:[ \t]*/, "", val)
                    if (key == "types") types = val
                    else if (key == "uris") uris = val
                    else if (key == "suites") suites = val
                    else if (key == "enabled") enabled = val
                }
                END { flush() }
            ' "${files[@]}"
        fi
        files=(/etc/apt/sources.list /etc/apt/sources.list.d/*.list)
        for f in "${files[@]}"; do
            [[ -r $f ]] || continue
            # deb [options] URI SUITE COMPONENTS...
            awk '$1 == "deb" {
                    i = 2
                    if ($i ~ /^\[/) { while (i <= NF && $i !~ /\]$/) i++; i++ }
                    if (i + 1 <= NF) print $i, $(i + 1)
                }' "$f"
        done
    )
    while read -r uri suite; do
        [[ $uri == http://* || $uri == https://* || $uri == file:* ]] || continue
        [[ $uri == *security* ]] && continue
        if [[ -n $codename && $suite == "$codename" ]]; then
            printf '%s\n' "${uri%/}"
            return 0
        fi
    done <<<"$candidates"
    while read -r uri suite; do
        [[ $uri == http://* || $uri == https://* || $uri == file:* ]] || continue
        [[ $uri == *security* || $suite == *-* ]] && continue
        if [[ ${uri%/} == */debian ]]; then
            printf '%s\n' "${uri%/}"
            return 0
        fi
    done <<<"$candidates"
    return 1
}

# Run a command inside DIR with a clean environment (used during the build).
in_root() {
    local r=$1
    shift
    chroot "$r" /usr/bin/env -i "PATH=$CLEAN_PATH" HOME=/root LANG=C.UTF-8 \
        DEBIAN_FRONTEND=noninteractive "$@"
}

# The host's apt may need settings to reach its mirror (a proxy; no Valid-Until/Date checks for
# snapshot mirrors). Copy those few into the root so its apt behaves like the host's.
write_root_apt_conf() {
    local r=$1 conf=$1/etc/apt/apt.conf.d/90deep-dream-gimp key val
    {
        echo '// Written by gimp3_root.sh: settings copied from the host apt (Valid-Until off for testing), no daemons.'
        echo 'APT::Install-Recommends "false";'
        for key in Acquire::http::Proxy Acquire::https::Proxy \
            Acquire::Check-Valid-Until Acquire::Check-Date; do
            val=$(apt-config dump "$key" 2>/dev/null | awk -v k="$key" '
                index($0, k " ") == 1 { v = substr($0, length(k) + 2); gsub(/^"|";$/, "", v); print v }')
            [[ $key == Acquire::Check-Valid-Until ]] && (( NO_VALID_UNTIL )) && val=false
            [[ -n $val ]] && printf '%s "%s";\n' "$key" "$val"
        done
    } >"$conf"
    # Never start services inside the chroot during package installation.
    printf '#!/bin/sh\nexit 101\n' >"$r/usr/sbin/policy-rc.d"
    chmod 755 "$r/usr/sbin/policy-rc.d"
}

BUILD_TMP=
BUILD_LOG=
cleanup_build() {
    if [[ -n $BUILD_TMP && -e $BUILD_TMP ]]; then
        log "build interrupted or failed; removing $BUILD_TMP"
        safe_rmtree "$BUILD_TMP" || true
        if [[ -n $BUILD_LOG && -r $BUILD_LOG ]]; then
            log "last lines of $BUILD_LOG:"
            tail -n 25 "$BUILD_LOG" >&"$MSG_FD" || true
        fi
    fi
}

# Install the packages into R (a bootstrapped or existing root). Output goes to BUILD_LOG.
install_packages() {
    local r=$1 t
    write_root_apt_conf "$r"
    mount_chroot_fs "$r"    # some maintainer scripts want /proc and /dev/null
    t=$(now_ns)
    log "apt-get update + install ${PACKAGES[*]} in the root ..."
    {
        in_root "$r" apt-get update
        in_root "$r" apt-get install -y --no-install-recommends "${PACKAGES[@]}"
        in_root "$r" apt-get clean   # the downloaded .debs are a few hundred MB we never reuse
    } >>"$BUILD_LOG" 2>&1
    log "packages installed in $(elapsed "$t")"
    umount_all "$r"
}

build_root() {
    local mirror proxy t0 t gimp
    mirror=$(detect_mirror) \
        || die "could not find a Debian mirror in /etc/apt/sources*; set GIMP3_MIRROR=URL"
    BUILD_TMP=$(mktemp -d "$ROOT.tmp.XXXXXX")
    BUILD_LOG=$ROOT.build.log
    : >"$BUILD_LOG"
    trap cleanup_build EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    trap 'exit 129' HUP
    chmod 755 "$BUILD_TMP"   # mktemp makes it 0700; the root's / must be world-readable
    t0=$(now_ns)

    # debootstrap fetches with wget, which does not read apt's proxy setting.
    proxy=$(apt-config dump Acquire::http::Proxy 2>/dev/null \
        | awk '/^Acquire::http::Proxy /{ v = $2; gsub(/^"|";$/, "", v); print v }')
    if [[ -n $proxy && -z ${http_proxy:-} ]]; then
        export http_proxy=$proxy
    fi

    log "debootstrap --variant=minbase $SUITE into $BUILD_TMP from $mirror (log: $BUILD_LOG) ..."
    t=$(now_ns)
    debootstrap --variant=minbase "$SUITE" "$BUILD_TMP" "$mirror" \
        "/usr/share/debootstrap/scripts/$DEBOOTSTRAP_SCRIPT" >>"$BUILD_LOG" 2>&1
    log "debootstrap done in $(elapsed "$t")"

    install_packages "$BUILD_TMP"

    gimp=$(find_gimp_console "$BUILD_TMP") || die "no gimp-console binary after installation"
    log "$(in_root "$BUILD_TMP" "$gimp" --version 2>&1 | head -n 1)"
    [[ -z $(missing_packages "$BUILD_TMP/var/lib/dpkg") ]] || die "packages missing after install"
    [[ -z $(mounts_under "$BUILD_TMP") ]] || die "mounts left in $BUILD_TMP"

    # Atomic publish: until this rename the root does not exist under its final name.
    mv -T -- "$BUILD_TMP" "$ROOT"
    BUILD_TMP=
    trap - EXIT INT TERM HUP
    log "built $ROOT in $(elapsed "$t0") ($(du -sh --one-file-system "$ROOT" 2>/dev/null | cut -f1))"
}

# root_status DIR -> 0 if complete; prints what is wrong otherwise
root_status() {
    local r=$1 gimp missing
    [[ -d $r ]] || { echo "does not exist"; return 1; }
    gimp=$(find_gimp_console "$r") || { echo "no gimp-console binary"; return 1; }
    missing=$(missing_packages "$r/var/lib/dpkg" | paste -sd ' ')
    [[ -z $missing ]] || { echo "missing packages: $missing"; return 1; }
    # gimp-console --version needs neither /proc nor /dev, so this works without mounting.
    if (( EUID == 0 )); then
        in_root "$r" "$gimp" --version 2>&1 \
            | grep -q "GNU Image Manipulation Program version ${GIMP_VERSION//./\\.}\\." \
            || { echo "$gimp --version does not report GIMP $GIMP_VERSION"; return 1; }
    fi
}

ensure_native() {
    local missing gimp
    mapfile -t missing < <(missing_packages /var/lib/dpkg)
    if (( ${#missing[@]} )); then
        (( EUID == 0 )) \
            || die "native GIMP 3 found, but missing: ${missing[*]} (sudo apt-get install ${missing[*]})"
        log "native GIMP 3; installing missing packages: ${missing[*]}"
        DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}" >&2
    fi
    gimp=$(find_gimp_console "")
    [[ ${1:-} == quiet ]] || log "native $("$gimp" --version 2>&1 | head -n 1) (no chroot needed)"
}

# ensure [quiet]
ensure() {
    local quiet=${1:-} t0 why lockfd
    t0=$(now_ns)
    if native_mode; then
        ensure_native "$quiet"
        return 0
    fi
    require_sane_root
    if why=$(root_status "$ROOT"); then
        [[ $quiet == quiet ]] || log "cached root OK: $ROOT ($(in_root "$ROOT" "$(find_gimp_console "$ROOT")" --version 2>&1 | head -n 1); checked in $(elapsed "$t0"))"
        return 0
    fi
    require_root_user
    log "root $ROOT not usable: $why"
    if [[ $GIMP_VERSION == 3.0 ]] && host_is_trixie_or_newer; then
        log "hint: this host is Debian 13+; 'apt-get install ${PACKAGES[*]}' would avoid the chroot"
    fi

    mkdir -p -- "$(dirname -- "$ROOT")"
    # One builder at a time; a second caller waits and then finds the root complete.
    exec {lockfd}>"$ROOT.build.lock"
    if ! flock -n "$lockfd"; then
        log "another build is running; waiting for it ..."
        flock "$lockfd"
    fi
    if why=$(root_status "$ROOT"); then
        log "root was built meanwhile: $ROOT"
        exec {lockfd}>&-
        return 0
    fi

    # Leftovers of interrupted builds (we hold the build lock, so nobody is using them).
    local d
    for d in "$ROOT".tmp.* "$ROOT".old.*; do
        [[ -d $d ]] || continue
        log "removing stale build directory $d"
        safe_rmtree "$d"
    done

    if ! command -v debootstrap >/dev/null; then
        log "installing debootstrap on the host ..."
        DEBIAN_FRONTEND=noninteractive apt-get update >&2
        DEBIAN_FRONTEND=noninteractive apt-get install -y debootstrap >&2
    fi

    if [[ -e $ROOT ]]; then
        # A complete-looking root that lost packages (or an older package list): repair in place,
        # which is much faster than a rebuild. Needs the mounts, so it must not be in use.
        local mutexfd usersfd
        exec {mutexfd}>"$ROOT.mount.lock" {usersfd}>"$ROOT.users.lock"
        flock -x "$mutexfd"
        flock -x -n "$usersfd" \
            || die "$ROOT is in use by a '$PROG run'; let it finish, then retry"
        BUILD_LOG=$ROOT.build.log
        : >"$BUILD_LOG"
        log "repairing $ROOT in place (log: $BUILD_LOG) ..."
        trap 'umount_all "$ROOT" || true' EXIT
        if install_packages "$ROOT" && why=$(root_status "$ROOT"); then
            trap - EXIT
            log "repaired $ROOT in $(elapsed "$t0")"
            exec {lockfd}>&- {mutexfd}>&- {usersfd}>&-
            return 0
        fi
        umount_all "$ROOT" || die "could not unmount $ROOT"
        trap - EXIT
        log "repair failed ($why); rebuilding from scratch"
        local old
        old=$ROOT.old.$$
        mv -T -- "$ROOT" "$old"
        build_root
        safe_rmtree "$old"
        exec {mutexfd}>&- {usersfd}>&-
    else
        build_root
    fi
    exec {lockfd}>&-
}

# ----------------------------------------------------------------------------------------------
# run / umount

# Concurrent runs share one set of mounts. Two lock files next to the root:
#   ROOT.mount.lock  mutex, held only briefly while deciding to mount or unmount;
#   ROOT.users.lock  every active `run` holds a shared lock on it while its command runs.
# On exit a run takes the mutex and tries to get the users lock exclusively: if that works it
# is the last user and unmounts, otherwise it leaves the mounts to the others.
MUTEX_FD=
USERS_FD=
acquire_mounts() {
    exec {MUTEX_FD}>"$ROOT.mount.lock"
    exec {USERS_FD}>"$ROOT.users.lock"
    flock -x "$MUTEX_FD"
    mount_chroot_fs "$ROOT"
    flock -s "$USERS_FD"    # never blocks: exclusive holders also hold the mutex, which we have
    flock -u "$MUTEX_FD"
}

release_mounts() {
    [[ -n $USERS_FD ]] || return 0
    flock -x "$MUTEX_FD"
    if flock -x -n "$USERS_FD"; then
        umount_all "$ROOT" || log "warning: could not unmount everything under $ROOT"
    fi
    exec {USERS_FD}>&-
    USERS_FD=
    exec {MUTEX_FD}>&-
    MUTEX_FD=
}

cmd_run() {
    (( $# )) || die "run: no command given (usage: $PROG run -- CMD [ARGS...])"
    ensure quiet
    if native_mode; then
        build_env "$HOME"
        exec env -i "${CMD_ENV[@]}" "$@" {MSG_FD}>&-
    fi
    require_root_user
    build_env /root

    trap release_mounts EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    trap 'exit 129' HUP
    acquire_mounts

    local rc=0
    # The lock fds are closed for the command: a process it leaves running in the background
    # must not keep the root "in use" forever after this run has finished.
    chroot "$ROOT" /usr/bin/env -i "${CMD_ENV[@]}" "$@" \
        {USERS_FD}>&- {MUTEX_FD}>&- {MSG_FD}>&- || rc=$?
    release_mounts
    trap - EXIT
    return "$rc"
}

cmd_umount() {
    native_mode && { log "native mode: nothing is mounted"; return 0; }
    require_sane_root
    require_root_user
    local mutexfd usersfd d rc=0
    mkdir -p -- "$(dirname -- "$ROOT")"
    exec {mutexfd}>"$ROOT.mount.lock" {usersfd}>"$ROOT.users.lock"
    flock -x "$mutexfd"
    flock -x -n "$usersfd" || log "warning: a '$PROG run' is still active; unmounting anyway"
    for d in "$ROOT" "$ROOT".tmp.* "$ROOT".old.*; do
        [[ -e $d ]] || continue
        umount_all "$d" || rc=1
    done
    (( rc == 0 )) && log "nothing mounted under $ROOT"
    return "$rc"
}

# ----------------------------------------------------------------------------------------------

main() {
    local cmd=${1:-ensure}
    (( $# )) && shift
    case $cmd in
        -h | --help | help) usage ;;
        ensure)
            (( $# == 0 )) || die "ensure takes no arguments"
            ensure
            ;;
        path)
            (( $# == 0 )) || die "path takes no arguments"
            ensure quiet
            if native_mode; then echo /; else printf '%s\n' "$ROOT"; fi
            ;;
        console)
            (( $# == 0 )) || die "console takes no arguments"
            printf '%s\n' "$GIMP_CONSOLE"
            ;;
        run)
            [[ ${1:-} == -- ]] && shift
            cmd_run "$@"
            ;;
        umount | unmount)
            cmd_umount
            ;;
        *)
            usage >&2
            exit 2
            ;;
    esac
}

main "$@"
