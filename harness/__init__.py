"""Host-side harness: build, boot, hot-plug, test and measure memmap on memory."""
