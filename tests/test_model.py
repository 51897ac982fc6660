"""The memmap arithmetic the scenario tests hold the kernel to."""

import unittest

from harness import model

MIB = 1 << 20
GIB = 1 << 30


class ModelTest(unittest.TestCase):
    def test_memmap_of_a_128m_block_is_one_pmd(self):
        self.assertEqual(model.memmap_bytes(128 * MIB), 2 * MIB)
        self.assertEqual(model.memmap_pages(128 * MIB), 512)

    def test_modes(self):
        self.assertEqual(model.selfhosted_pages(128 * MIB, "0"), 0)
        self.assertEqual(model.selfhosted_pages(128 * MIB, "1"), 512)
        # force no longer pads to pageblocks: the same as =1
        self.assertEqual(model.selfhosted_pages(128 * MIB, "force"), 512)

    def test_memmap_that_cannot_be_self_hosted(self):
        # 64 MiB blocks: 1 MiB of memmap, not a whole PMD
        self.assertEqual(model.selfhosted_pages(64 * MIB, "1"), 0)
        # 1 GiB blocks: 16 MiB, eight PMDs
        self.assertEqual(model.selfhosted_pages(1024 * MIB, "1"), 4096)

    def test_usable_share(self):
        self.assertEqual(model.usable_bytes(2 * GIB, 128 * MIB, "1"), 2 * GIB * 63 // 64)
        self.assertEqual(model.usable_bytes(2 * GIB, 128 * MIB, "force"), 2 * GIB * 63 // 64)
        self.assertEqual(model.usable_bytes(2 * GIB, 128 * MIB, "0"), 2 * GIB)

    def test_arm64_page_sizes(self):
        # with base-page vmemmaps (no PMD rule): 32 pages of 16 KiB of a
        # 128 MiB block, 8 pages of 64 KiB of a 512 MiB block
        self.assertEqual(model.selfhosted_pages(128 * MIB, "1", 16 << 10, 0), 32)
        self.assertEqual(model.selfhosted_pages(512 * MIB, "1", 64 << 10, 0), 8)
        # under the generic PMD rule (32 MiB and 512 MiB PMDs): none
        self.assertEqual(model.selfhosted_pages(128 * MIB, "1", 16 << 10, 32 * MIB), 0)
        self.assertEqual(model.selfhosted_pages(512 * MIB, "1", 64 << 10, 512 * MIB), 0)
        self.assertEqual(model.usable_bytes(2 * GIB, 512 * MIB, "1", 64 << 10, 0),
                         2 * GIB - 4 * 8 * (64 << 10))
        self.assertEqual(model.memmap_bytes(GIB, 64 << 10), MIB)
        self.assertAlmostEqual(model.usable_floor(64 << 10), 0.9990234375)
        self.assertAlmostEqual(model.usable_floor(), 63 / 64)

    def test_mode_from_param(self):
        self.assertEqual([model.mode_from_param(v) for v in ("Y\n", "N", "force")],
                         ["1", "0", "force"])

    def test_slope(self):
        self.assertEqual(model.slope([]), 0.0)
        self.assertEqual(model.slope([5]), 0.0)
        self.assertAlmostEqual(model.slope([0, 2, 4, 6]), 2.0)
        self.assertAlmostEqual(model.slope([3, 1, 3, 1, 3, 1]), -3 / 17.5)


