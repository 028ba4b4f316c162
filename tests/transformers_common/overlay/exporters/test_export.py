"""Export tests (torch.export) are not part of this comparison."""


class ExportTesterMixin:
    pass
