import { afterAll, beforeAll, expect, it } from 'vitest';
import { describeWith, prereqs } from '../support/prereqs.js';
import { LoopBtrfs, TestDockerd } from '../support/dockerd.js';

describeWith(
  [prereqs.root, prereqs.dockerd, prereqs.busybox, prereqs.btrfs],
  'test dockerd on loop btrfs',
  () => {
    const btrfs = new LoopBtrfs(2 * 1024 ** 3);
    let dockerd: TestDockerd;

    beforeAll(async () => {
      await btrfs.create();
      dockerd = new TestDockerd({ storageDriver: 'btrfs', dataRoot: btrfs.mountPoint });
      await dockerd.start();
    });

    afterAll(async () => {
      await dockerd?.destroy();
      await btrfs.destroy();
    });

    it('runs a busybox container with a size limit', async () => {
      const image = await dockerd.ensureBusyboxImage();
      const out = await dockerd.cli([
        'run',
        '--rm',
        '--storage-opt',
        'size=64M',
        image,
        'sh',
        '-c',
        'echo hello',
      ]);
      expect(out.trim()).toBe('hello');
      const driver = (await dockerd.cli(['info', '--format', '{{.Driver}}'])).trim();
      expect(driver).toBe('btrfs');
    });
  },
);
