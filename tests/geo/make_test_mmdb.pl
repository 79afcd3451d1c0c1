#!/usr/bin/perl
# Writes a small GeoIP2-City-shaped MaxMind database for tests:
#   203.0.113.0/24  JP (AS) Tokyo, AS64500
#   198.51.100.0/24 US (NA) Ashburn
#   192.0.2.0/24    DE (EU) Frankfurt
#   100.64.0.0/24   HK (AS), country only: no location
# Usage: make_test_mmdb.pl OUT.mmdb [moved]
#   moved: 203.0.113.0/24 is in the US instead (to test reloading)
use strict;
use warnings;
use MaxMind::DB::Writer::Tree;

my $out = shift or die "usage: $0 OUT.mmdb [moved]\n";
my $moved = (shift // '') eq 'moved';
my %types = (
    country => 'map', continent => 'map', location => 'map', city => 'map', names => 'map',
    iso_code => 'utf8_string', code => 'utf8_string', en => 'utf8_string',
    latitude => 'double', longitude => 'double', autonomous_system_number => 'uint32',
);
my $tree = MaxMind::DB::Writer::Tree->new(
    ip_version => 6,
    record_size => 28,
    database_type => 'GeoIP2-City',
    languages => ['en'],
    description => { en => 'rtmplb test database' },
    map_key_type_callback => sub { $types{ $_[0] } },
    remove_reserved_networks => 0,
    alias_ipv6_to_ipv4 => 1,
);
sub place {
    my ($cc, $cont, $lat, $lon, $city) = @_;
    my %r = (country => { iso_code => $cc }, continent => { code => $cont });
    $r{location} = { latitude => $lat, longitude => $lon } if defined $lat;
    $r{city} = { names => { en => $city } } if defined $city;
    return \%r;
}
my $jp = place('JP', 'AS', 35.68, 139.69, 'Tokyo');
$jp->{autonomous_system_number} = 64500;
$tree->insert_network('203.0.113.0/24', $moved ? place('US', 'NA', 37.77, -122.42, 'San Francisco')
                                               : $jp);
$tree->insert_network('198.51.100.0/24', place('US', 'NA', 39.04, -77.49, 'Ashburn'));
$tree->insert_network('192.0.2.0/24', place('DE', 'EU', 50.11, 8.68, 'Frankfurt'));
$tree->insert_network('100.64.0.0/24', place('HK', 'AS'));
open my $fh, '>:raw', $out or die "$out: $!\n";
$tree->write_tree($fh);
close $fh or die "$out: $!\n";
