"""The streaming STFT equals scipy.signal.stft, whatever the block boundaries."""
import numpy as np
import pytest
from scipy.signal import stft

from avstream.spectral import StreamingSTFT


@pytest.mark.parametrize("window", ["hann", "hamming"])
@pytest.mark.parametrize("frame,hop", [(512, 256), (512, 128), (256, 256), (400, 160)])
def test_matches_scipy_across_blocks(window, frame, hop):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((3, 8000)).astype(np.float32)
    _, _, ref = stft(x, window=window, nperseg=frame, noverlap=frame - hop, boundary=None, padded=False)
    ref = np.moveaxis(ref, -1, 0)  # (n_frames, n_ch, n_freq)
    st = StreamingSTFT(3, frame, hop, window, max_block=700)
    got, starts = [], []
    pos = 0
    for n in rng.integers(1, 1500, size=200):  # ragged blocks, some larger than max_block
        if pos >= x.shape[1]:
            break
        for start, frames in st.push(x[:, pos:pos + n]):
            got.append(frames.copy())
            starts.extend(start + hop * np.arange(len(frames)))
        pos += n
    got = np.concatenate(got)
    assert got.shape == ref.shape
    assert np.array_equal(starts, hop * np.arange(len(ref)))
    np.testing.assert_allclose(got, ref, rtol=0, atol=2e-6 * np.abs(ref).max())
