"""Placeholder: mlp, lenet, alexnet, vgg11, resnet18 are registered here."""
