"""A training script shaped like the official OGM-GE code (GeWu-Lab/OGM-GE_CVPR2022):
its model returns what its fusion module returns (``a, v, out``), ``train_epoch``
rescales the encoders' gradients after ``loss.backward()`` (OGM-GE), and ``valid``
evaluates under ``torch.no_grad()``. Tiny encoders and synthetic data, so it runs
in seconds on a CPU. ogm_ge_like_goal.py and ogm_ge_like_ogm_go.py are the same
script with GOAL and with GO after OGM; docs/ogm_ge_loop.md shows the diffs."""

import argparse

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import goal_plugin as gp


def get_arguments():
    parser = argparse.ArgumentParser()
    parser.add_argument("--modulation", default="OGM_GE", choices=["Normal", "OGM", "OGM_GE"])
    parser.add_argument("--alpha", default=0.8, type=float)
    parser.add_argument("--modulation_starts", default=0, type=int)
    parser.add_argument("--modulation_ends", default=50, type=int)
    parser.add_argument("--epochs", default=4, type=int)
    parser.add_argument("--batch_size", default=32, type=int)
    return parser.parse_args()


class ConcatFusion(nn.Module):
    def __init__(self, input_dim=32, output_dim=4):
        super().__init__()
        self.fc_out = nn.Linear(input_dim, output_dim)

    def forward(self, x, y):
        output = self.fc_out(torch.cat((x, y), dim=1))
        return x, y, output


class VisualNet(nn.Module):
    """Encodes every frame: (B, C, T, H, W) -> (B * T, dim, H, W)."""

    def __init__(self, dim):
        super().__init__()
        self.conv = nn.Sequential(nn.Conv2d(3, dim, 3, padding=1), nn.ReLU())

    def forward(self, x):
        batch, channels, frames, height, width = x.size()
        return self.conv(x.permute(0, 2, 1, 3, 4).reshape(batch * frames, channels, height, width))


class AVClassifier(nn.Module):
    def __init__(self, args, dim=16, n_classes=4):
        super().__init__()
        self.fusion_module = ConcatFusion(input_dim=2 * dim, output_dim=n_classes)
        self.audio_net = nn.Sequential(nn.Conv2d(1, dim, 3, padding=1), nn.ReLU())
        self.visual_net = VisualNet(dim)
        self.strategy = gp.create_strategy("ogm_go", alpha=args.alpha)

    def forward(self, audio, visual, label=None):
        a = self.audio_net(audio)
        v = self.visual_net(visual)
        (_, C, H, W) = v.size()
        B = a.size()[0]
        v = v.view(B, -1, C, H, W).permute(0, 2, 1, 3, 4)
        a = torch.flatten(F.adaptive_avg_pool2d(a, 1), 1)
        v = torch.flatten(F.adaptive_avg_pool3d(v, 1), 1)
        fc = self.fusion_module.fc_out  # OGM scores each modality by its slice of the fused classifier
        half = fc.weight.size(1) // 2
        logits = (a @ fc.weight[:, :half].T + fc.bias / 2, v @ fc.weight[:, half:].T + fc.bias / 2)
        out = self.fusion_module(*self.strategy.gate(a, v, logits=logits, labels=label))[2]
        return a, v, out  # a, v not gated: their own losses, if any, reach the encoders unmodified


def train_epoch(args, epoch, model, device, dataloader, optimizer, scheduler):
    criterion = nn.CrossEntropyLoss()
    model.train()
    total = 0.0
    for spec, image, label in dataloader:
        spec, image, label = spec.to(device), image.to(device), label.to(device)
        optimizer.zero_grad()
        a, v, out = model(spec.unsqueeze(1).float(), image.float(), label)
        weight = model.module.fusion_module.fc_out.weight
        half = weight.size(1) // 2
        bias = model.module.fusion_module.fc_out.bias
        out_a = a @ weight[:, :half].T + bias / 2
        out_v = v @ weight[:, half:].T + bias / 2
        loss = criterion(out, label)
        loss.backward()
        if args.modulation != "Normal":
            # OGM: slow down the modality whose slice scores the labels better.
            score_a = F.softmax(out_a, dim=1).gather(1, label[:, None]).sum()
            score_v = F.softmax(out_v, dim=1).gather(1, label[:, None]).sum()
            ratio_v = score_v / score_a
            coeff_a, coeff_v = 1.0, 1.0
            if ratio_v > 1:
                coeff_v = 1 - torch.tanh(args.alpha * F.relu(ratio_v))
            else:
                coeff_a = 1 - torch.tanh(args.alpha * F.relu(1 / ratio_v))
            if args.modulation_starts <= epoch <= args.modulation_ends:
                for name, parms in model.named_parameters():
                    layer = name.split(".")[1]
                    coeff = coeff_a if "audio" in layer else coeff_v if "visual" in layer else None
                    if coeff is None or parms.grad.dim() != 4:
                        continue
                    parms.grad = parms.grad * coeff
                    if args.modulation == "OGM_GE":
                        parms.grad += torch.zeros_like(parms.grad).normal_(0, parms.grad.std().item() + 1e-8)
        optimizer.step()
        total += loss.item()
    scheduler.step()
    return total / len(dataloader)


def valid(args, model, device, dataloader):
    correct, count = 0, 0
    with torch.no_grad():
        model.eval()
        for spec, image, label in dataloader:
            spec, image, label = spec.to(device), image.to(device), label.to(device)
            _, _, out = model(spec.unsqueeze(1).float(), image.float())
            correct += (out.argmax(dim=1) == label).sum().item()
            count += label.numel()
    return correct / count


def synthetic_crema_d(samples, seed):
    """Audio carries the class clearly, the three video frames only weakly."""
    generator = torch.Generator().manual_seed(seed)
    label = torch.randint(0, 4, (samples,), generator=generator)
    level = (label.float() - 1.5)[:, None, None]
    spec = torch.randn(samples, 8, 8, generator=generator) + 1.0 * level
    image = torch.randn(samples, 3, 3, 8, 8, generator=generator) + 0.2 * level[:, None, None]
    return TensorDataset(spec, image, label)


def main():
    args = get_arguments()
    torch.manual_seed(0)
    device = torch.device("cpu")
    model = AVClassifier(args)
    model = torch.nn.DataParallel(model)  # as in their main(); on a CPU it runs the module directly
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=1e-4)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, 70, 0.1)
    train_loader = DataLoader(synthetic_crema_d(256, seed=1), batch_size=args.batch_size, shuffle=True)
    test_loader = DataLoader(synthetic_crema_d(128, seed=2), batch_size=args.batch_size)
    for epoch in range(args.epochs):
        loss = train_epoch(args, epoch, model, device, train_loader, optimizer, scheduler)
        acc = valid(args, model, device, test_loader)
        print(f"epoch {epoch}: loss {loss:.4f}, acc {acc:.4f}")
    print(f"final loss {loss:.6f} accuracy {acc:.4f}")


if __name__ == "__main__":
    main()
