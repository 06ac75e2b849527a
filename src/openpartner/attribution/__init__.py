"""Attribution: which partner drove which conversion, exactly and replayably."""
