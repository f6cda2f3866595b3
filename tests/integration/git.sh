#!/bin/bash
# git.sh: git building a repository of generated files over several commits
# (adds, edits, renames, deletes), repacking, and reading it back (log,
# fsck, cat-file, diff, blame, archive, grep), with and without the shim,
# each time in a fresh directory at the same path. Author, committer and
# dates are fixed, so the commit hashes are too. Checks, through run_pair:
# identical output (hashes included), clean exits, the shim loaded. Skips
# when git is missing.
source "$(dirname "$0")/common.sh"

GIT=/usr/bin/git
need_program "$GIT"

cat >"$WORK/repo.sh" <<'SCRIPT'
set -euo pipefail
export HOME=$PWD GIT_CONFIG_NOSYSTEM=1 GIT_CONFIG_GLOBAL=/dev/null
export GIT_AUTHOR_NAME='A U Thor' GIT_AUTHOR_EMAIL=author@example.com
export GIT_COMMITTER_NAME='C O Mitter' GIT_COMMITTER_EMAIL=committer@example.com
export TZ=UTC LC_ALL=C
unset GIT_DIR GIT_WORK_TREE GIT_INDEX_FILE GIT_OBJECT_DIRECTORY

git init -q -b main repo
cd repo
git config gc.auto 0            # no background gc outliving the test
git config maintenance.auto false
git config core.autocrlf false

# gen DIR N SEED: N files of awk-generated text under DIR
gen() {
    mkdir -p "$1"
    awk -v dir="$1" -v n="$2" -v seed="$3" 'BEGIN {
        x = seed
        for (f = 0; f < n; f++) {
            file = sprintf("%s/f%04d.txt", dir, f)
            lines = 20 + (x % 200)
            for (l = 0; l < lines; l++) {
                x = (x * 1103515245 + 12345) % 2147483648
                printf "%s line %d value %d %x\n", dir, l, x % 100000, int(x / 256) > file
            }
            close(file)
        }
    }'
}

commit() {
    local n=$1 msg=$2
    export GIT_AUTHOR_DATE="2024-01-0${n}T12:00:00Z"
    export GIT_COMMITTER_DATE="2024-01-0${n}T12:30:00Z"
    git add -A
    git commit -q -m "$msg"
}

gen src 300 1
gen doc 100 2
commit 1 "initial import"

gen src 120 3                   # rewrites the first 120 files of src
sed -i 's/value 1/VALUE one/' doc/f000*.txt
commit 2 "rewrite and edit"

git mv src/f0001.txt src/renamed.txt
git rm -q doc/f005*.txt
gen lib 150 4
commit 3 "rename, delete, add"

for i in 1 2 3 4 5; do
    gen "more$i" 40 $((10 + i))
    commit $((3 + i)) "batch $i"
done

git repack -a -d -q --threads=2
git prune-packed

echo "== log"
git log --format='%H %T %s'
echo "== fsck"
git fsck --full --strict --no-progress
echo "== objects"
git cat-file --batch-all-objects --batch-check | sort | sha256sum
git cat-file --batch-all-objects --batch-check | wc -l
echo "== diff"
git diff --stat HEAD~7 HEAD | tail -n 1
git diff HEAD~7 HEAD | sha256sum
git log --numstat --format=%h | sha256sum
echo "== blame"
git blame -s doc/f0001.txt | sha256sum
echo "== archive"
git archive --format=tar HEAD | sha256sum
echo "== grep"
git grep -c 'value 4' HEAD -- src | sha256sum
git grep -c 'VALUE one' HEAD | wc -l
echo "== rev-list"
git rev-list --objects --all | sort | sha256sum
SCRIPT

export PATH=/usr/bin:/bin
# bash and many git processes (and awk, sed, sort, sha256sum)
MIN_PROCS=20 run_pair repo /bin/bash "$WORK/repo.sh"
finish
