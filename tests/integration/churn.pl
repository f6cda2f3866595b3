# churn.pl: the workload of perl.sh. Hash, string and array churn with
# nested structures, regexes, sort, splice and sprintf, driven by a fixed
# srand seed. Everything printed is a count or an MD5 of sorted data, so
# the output does not depend on hash order, addresses or the malloc used.
use strict;
use warnings;
use Digest::MD5 qw(md5_hex);

srand(20240601);
my @alpha = ('a' .. 'z', '0' .. '9', '_');

sub word {
    my ($lo, $hi) = @_;
    my $n = $lo + int(rand($hi - $lo + 1));
    return join '', map { $alpha[int rand @alpha] } 1 .. $n;
}

sub canon {    # a stable text form of a nested structure
    my ($x) = @_;
    my $r = ref $x;
    return defined $x ? "s:$x" : 'u' unless $r;
    return '[' . join(',', map { canon($_) } @$x) . ']' if $r eq 'ARRAY';
    return '{' . join(',', map { "$_=>" . canon($x->{$_}) } sort keys %$x) . '}'
        if $r eq 'HASH';
    die "canon: $r";
}

for my $round (1 .. 3) {
    # hash churn: insert, overwrite, delete; values of mixed shapes
    my %h;
    for my $i (1 .. 40000) {
        my $k = word(1, 20);
        my $r = rand;
        if ($r < 0.4) {
            $h{$k} = [map { word(0, 8) } 1 .. int(rand 6)];
        } elsif ($r < 0.6) {
            $h{$k} = { n => $i, s => $k x (1 + int rand 15) };
        } elsif ($r < 0.8) {
            $h{$k} = sprintf('%s-%07d-%.3f', uc $k, $i, $i / 7);
        } else {
            delete $h{$k};
            if ($i % 1000 == 0) {    # and a few others, by sorted position
                my @some = grep { defined } (sort keys %h)[0 .. 2];
                delete @h{@some};
            }
        }
    }
    my @keys = sort keys %h;
    my $hsum = md5_hex(join ';', map { "$_=" . canon($h{$_}) } @keys[0 .. 1999]);
    printf "round %d hash keys %d md5 %s\n", $round, scalar @keys, $hsum;

    # string churn: build, grow, substitute, split, reverse
    my $s = '';
    $s .= word(1, 40) . ' ' for 1 .. 30000;
    (my $t = $s) =~ s/([aeiou])([a-z])/$2\U$1/g;
    my @w = split ' ', $t;
    my %freq;
    $freq{substr($_, 0, 2)}++ for @w;
    my $joined = join '|', reverse @w[0 .. 4999];
    my @m = ($t =~ /([a-z]+\d*)([AEIOU])/g);
    printf "round %d str len %d %d words %d matches %d freq %s md5 %s\n",
        $round, length $s, length $joined, scalar @w, scalar @m,
        md5_hex(join ',', map { "$_:$freq{$_}" } sort keys %freq),
        md5_hex($joined);

    # array churn: push, splice, sort numerically, grep, map
    my @a = map { [map { int rand 1e6 } 1 .. int rand 300] } 1 .. 600;
    my $total = 0;
    for my $pass (1 .. 5) {
        for my $row (@a) {
            my $r = rand;
            if ($r < 0.3) {
                push @$row, map { int rand 1000 } 1 .. int rand 200;
            } elsif ($r < 0.5) {
                splice @$row, 0, int(@$row / 2);
            } elsif ($r < 0.7) {
                @$row = sort { $a <=> $b } @$row;
            } else {
                @$row = reverse grep { $_ % 3 } @$row;
            }
            $total += @$row;
        }
    }
    my @flat = sort { $a <=> $b } map { @$_[0 .. ($#$_ < 9 ? $#$_ : 9)] } @a;
    printf "round %d arrays total %d md5 %s\n", $round, $total,
        md5_hex(join ',', @flat);
}
