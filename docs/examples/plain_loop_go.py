"""A plain PyTorch training loop for a two-encoder model. plain_loop_go.py is the
same loop with GO added; docs/plain_pytorch.md shows the diff."""

import torch
import torch.nn.functional as F
from torch import nn

import goal_plugin as gp


class ConcatFusion(nn.Module):
    def __init__(self, dim, num_classes):
        super().__init__()
        self.fc = nn.Linear(2 * dim, num_classes)

    def forward(self, f_audio, f_visual):
        return self.fc(torch.cat([f_audio, f_visual], dim=1))


class AudioVisualNet(nn.Module):
    def __init__(self, audio_dim=20, visual_dim=30, dim=16, num_classes=4):
        super().__init__()
        self.audio = nn.Sequential(nn.Linear(audio_dim, dim), nn.ReLU())
        self.visual = nn.Sequential(nn.Linear(visual_dim, dim), nn.ReLU())
        self.fusion = ConcatFusion(dim, num_classes)

    def forward(self, audio, visual):
        return self.fusion(self.audio(audio), self.visual(visual))


torch.manual_seed(0)
labels = torch.randint(0, 4, (512,))
audio = torch.randn(512, 20) + 2.0 * F.one_hot(labels, 20)  # the easy modality
visual = torch.randn(512, 30) + 0.5 * F.one_hot(labels, 30)  # the weak one

model = AudioVisualNet()
gp.attach(model.fusion, gp.create_strategy("go"))
optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)

for epoch in range(5):
    for start in range(0, 512, 64):
        batch = slice(start, start + 64)
        loss = F.cross_entropy(model(audio[batch], visual[batch]), labels[batch])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

with torch.no_grad():
    accuracy = (model(audio, visual).argmax(dim=1) == labels).float().mean()
print(f"final loss {loss.item():.6f} accuracy {accuracy.item():.4f}")
