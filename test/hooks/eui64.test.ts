import t from 'tap';
import { Eui64Error, eui64, formatIpv6, parseIpv6, parsePrefix64 } from '../../src/hooks/eui64.js';

t.test('EUI-64 vectors (checked with Python ipaddress)', async (t) => {
  const vectors: [string, string, string][] = [
    ['00:01:de:ad:be:ef', '2001:db8::/64', '2001:db8::201:deff:fead:beef'], // Synnefo's unit test
    ['aa:00:01:b1:67:50', '2001:db8:10::/64', '2001:db8:10:0:a800:1ff:feb1:6750'], // fixture NIC 0
    ['aa:00:00:11:22:33', '2001:db8:10::/64', '2001:db8:10:0:a800:ff:fe11:2233'],
    ['aa:00:01:eb:15:77', '2001:db8:10::/64', '2001:db8:10:0:a800:1ff:feeb:1577'],
    ['02:00:00:00:00:00', 'fe80::/64', 'fe80::ff:fe00:0'], // U/L bit cleared
    ['ff:ff:ff:ff:ff:ff', '2001:db8:1:2::/64', '2001:db8:1:2:fdff:ffff:feff:ffff'],
    ['00:00:00:00:00:00', '::/64', '::200:ff:fe00:0'],
    ['00:00:00:00:00:01', '2001:0:0:1::/64', '2001::1:200:ff:fe00:1'], // the longer zero run is compressed
    ['02:00:00:00:00:01', '2001:db8::/64', '2001:db8::ff:fe00:1'],
    ['00:01:DE:AD:BE:EF', '2001:DB8::/64', '2001:db8::201:deff:fead:beef'], // upper case in, lower case out
    ['00:01:de:ad:be:ef', '2001:db8:0:0:ffff:ffff:ffff:ffff/64', '2001:db8::201:deff:fead:beef'], // host bits ignored
  ];
  for (const [mac, prefix, want] of vectors) t.equal(eui64(mac, prefix), want, `${mac} in ${prefix}`);
});

t.test('bad input', async (t) => {
  for (const mac of ['00:01:de:ad:be', '00:01:de:ad:be:ef:00', '0:1:de:ad:be:ef', '00-01-de-ad-be-ef', 'zz:01:de:ad:be:ef', '']) {
    t.throws(() => eui64(mac, '2001:db8::/64'), Eui64Error, `MAC ${JSON.stringify(mac)}`);
  }
  for (const p of ['2001:db8::/48', '2001:db8::/128', '2001:db8::', '10.0.0.0/64', '2001:db8::/6x', '2001:db8:::/64', '1:2:3:4:5:6:7:8:9/64', 'g::/64', '/64']) {
    t.throws(() => parsePrefix64(p), Eui64Error, `prefix ${p}`);
  }
});

t.test('IPv6 parsing and RFC 5952 formatting', async (t) => {
  t.same(parseIpv6('::'), [0, 0, 0, 0, 0, 0, 0, 0]);
  t.same(parseIpv6('1::'), [1, 0, 0, 0, 0, 0, 0, 0]);
  t.same(parseIpv6('::ffff:192.0.2.1'), [0, 0, 0, 0, 0, 0xffff, 0xc000, 0x201]);
  t.same(parseIpv6('1:2:3:4:5:6:7:8'), [1, 2, 3, 4, 5, 6, 7, 8]);
  t.same(parseIpv6('1:2:3:4:5:6:192.0.2.1'), [1, 2, 3, 4, 5, 6, 0xc000, 0x201]);
  t.equal(parseIpv6('1:2:3:4:5:6:7'), undefined);
  t.equal(parseIpv6('1::2::3'), undefined);
  t.equal(parseIpv6('12345::'), undefined);
  t.equal(parseIpv6('::1.2.3.256'), undefined);
  t.equal(formatIpv6([0, 0, 0, 0, 0, 0, 0, 0]), '::');
  t.equal(formatIpv6([0, 0, 0, 0, 0, 0, 0, 1]), '::1');
  t.equal(formatIpv6([0x2001, 0xdb8, 0, 1, 0, 0, 0, 1]), '2001:db8:0:1::1');
  t.equal(formatIpv6([0x2001, 0xdb8, 0, 0, 1, 0, 0, 1]), '2001:db8::1:0:0:1', 'first of two equal runs');
  t.equal(formatIpv6([0x2001, 0xdb8, 0, 1, 1, 1, 1, 1]), '2001:db8:0:1:1:1:1:1', 'a single 0 group is not compressed');
});
