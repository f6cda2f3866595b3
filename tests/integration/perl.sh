#!/bin/bash
# perl.sh: /usr/bin/perl running churn.pl (hash/string/array churn) with
# and without the shim. Checks, through run_pair: identical output, clean
# exit, the shim loaded. Skips when perl or Digest::MD5 is missing.
source "$(dirname "$0")/common.sh"

PERL=/usr/bin/perl
need_program "$PERL"
"$PERL" -MDigest::MD5 -e 1 2>/dev/null || skip "perl module Digest::MD5 is not installed"
unset PERL5LIB PERL5OPT PERLLIB PERL_HASH_SEED

run_pair churn "$PERL" "$IT_DIR/churn.pl"
finish
