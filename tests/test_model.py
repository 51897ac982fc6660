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

    def test_mode_from_param(self):
        self.assertEqual([model.mode_from_param(v) for v in ("Y\n", "N", "force")],
                         ["1", "0", "force"])

    def test_slope(self):
        self.assertEqual(model.slope([]), 0.0)
        self.assertEqual(model.slope([5]), 0.0)
        self.assertAlmostEqual(model.slope([0, 2, 4, 6]), 2.0)
        self.assertAlmostEqual(model.slope([3, 1, 3, 1, 3, 1]), -3 / 17.5)


