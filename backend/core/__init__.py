"""The numerical core: VGG16, the seed's loss, the jittered L-BFGS loop. Knows nothing of ZeroMQ."""
