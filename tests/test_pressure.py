"""The CMA scenario's fill and sizes against a scripted guest: the fill
stops once the area holds enough, or before the memory outside the area
gets too small to take what must migrate; the allocations always ask for
more than the area has free, within the area."""

import unittest

from harness.measure import KIB, MIB
from harness.scenarios import pressure

AREA = 64 * MIB


class FakeGuest:
    """/proc/meminfo and /proc/zoneinfo of a guest as the kernel shows them:
    MemAvailable is the free memory outside the area less the reserves
    (high watermarks, lowmem reserve), plus the area's free pages.  Each
    tmpfs chunk lands `into_area` bytes in the area, the rest outside."""

    def __init__(self, free_outside, into_area, reserve=4 * MIB, start=None):
        self.start = free_outside if start is None else start
        self.sizes = []
        self.cma_free = AREA
        self.free_outside = free_outside
        self.into_area = into_area
        self.reserve = reserve
        self.chunks = 0
        self.cmds = []

    def run(self, cmd, timeout=None):
        self.cmds.append(cmd)
        if cmd == "cat /proc/meminfo":
            avail = self.free_outside - self.reserve + self.cma_free
            return (f"MemTotal: 1048576 kB\nMemAvailable: {avail // KIB} kB\n"
                    f"CmaFree: {self.cma_free // KIB} kB\n")
        if cmd.startswith("dd "):
            mib = int(cmd.split("count=")[1].split()[0])
            self.chunks += 1
            self.sizes.append(mib)
            # `into_area` of every 4 MiB lands in the area, once the rest of
            # memory is down to `start` (the allocator's rule, roughly)
            for _ in range(mib // 4):
                into = self.into_area if self.free_outside <= self.start else 0
                self.cma_free -= into
                self.free_outside -= 4 * MIB - into
        return ""


class CmaFill(unittest.TestCase):
    def test_stops_when_the_area_holds_enough(self):
        g = FakeGuest(free_outside=400 * MIB, into_area=2 * MIB)
        chunks, info = pressure.fill_cma(g, AREA)
        self.assertEqual(AREA - info["CmaFree"], pressure.CMA_HOLD_MIB * MIB)
        # 16, 8, 4 and 4 MiB: no chunk could take the area past 16 MiB
        self.assertEqual(g.sizes, [16, 8, 4, 4])
        self.assertEqual(chunks, 4)
        self.assertIn("md5sum /cmafill/f* > /cmafill.md5", g.cmds)

    def test_keeps_room_outside_the_area_for_migration(self):
        # the KASAN guest's shape: 22 MiB min and 27 MiB high watermarks,
        # 60 MiB free outside the area when the area starts to fill
        g = FakeGuest(free_outside=60 * MIB, into_area=2 * MIB, reserve=27 * MIB)
        chunks, info = pressure.fill_cma(g, AREA)
        held = AREA - info["CmaFree"]
        self.assertLess(held, pressure.CMA_HOLD_MIB * MIB)
        self.assertGreater(held, 0)
        # what the area holds can migrate and stay above the reserves
        self.assertGreaterEqual(g.free_outside - g.reserve, held)
        self.assertGreaterEqual(info["MemAvailable"] - info["CmaFree"], held)

    def test_large_chunks_while_far_from_the_area(self):
        # the KASAN guest: 600 MiB go outside the area before it fills
        g = FakeGuest(free_outside=700 * MIB, into_area=2 * MIB, reserve=27 * MIB,
                      start=100 * MIB)
        chunks, info = pressure.fill_cma(g, AREA)
        held = AREA - info["CmaFree"]
        self.assertLess(chunks, 50)
        self.assertEqual(max(g.sizes), pressure.CMA_CHUNK_MAX_MIB)
        self.assertEqual(g.sizes[-1], pressure.CMA_CHUNK_MIB)
        self.assertGreater(held, 0)
        self.assertGreaterEqual(g.free_outside - g.reserve, held)

    def test_does_not_fill_a_guest_with_no_room(self):
        g = FakeGuest(free_outside=10 * MIB, into_area=2 * MIB)
        chunks, _ = pressure.fill_cma(g, AREA)
        self.assertEqual((chunks, g.chunks), (0, 0))
        self.assertFalse([c for c in g.cmds if c.startswith("md5sum")])


class CmaSizes(unittest.TestCase):
    def pages(self, sizes):
        return pressure.CMA_ALLOCS + sum(sizes)

    def test_asks_for_more_than_is_free(self):
        # up to 59.5 MiB: the most that can be asked for is 1424 + 7 * 2047
        # pages (61.5 MiB), which is 2 MiB more than 59.54 MiB
        for free_mib in (20, 48, 53, 57.4, 58, 59.5):
            free = int(free_mib * MIB)
            sizes = pressure.cma_sizes(free)
            self.assertEqual(tuple(sizes[:len(pressure.CMA_SIZES)]), pressure.CMA_SIZES)
            self.assertGreater(self.pages(sizes) * 4 * KIB, free + pressure.CMA_MARGIN_MIB * MIB,
                               free_mib)
            self.assertLessEqual(self.pages(sizes) * 4 * KIB, AREA)

    def test_a_nearly_empty_area_cannot_be_asked_for_more(self):
        # the scenario's check "the request exceeds what the area has free"
        # fails then: the fill did not hold enough
        sizes = pressure.cma_sizes(int(59.6 * MIB))
        self.assertLessEqual(self.pages(sizes) * 4 * KIB,
                             int(59.6 * MIB) + pressure.CMA_MARGIN_MIB * MIB)

    def test_at_most_the_area(self):
        sizes = pressure.cma_sizes(AREA)
        self.assertEqual(len(sizes), len(pressure.CMA_SIZES) + pressure.CMA_LARGE_MAX)
        self.assertLessEqual(self.pages(sizes) * 4 * KIB, AREA)


if __name__ == "__main__":
    unittest.main()
