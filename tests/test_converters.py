"""COCO and VOC converters on hand-made fixtures, checked line by line."""
import json

import cv2
import numpy as np

from data.coco2yolo import convert as coco_convert
from data.voc2yolo import convert as voc_convert
from utils.datasets import label_path, load_items


def test_coco_to_yolo(tmp_path):
    coco = {
        'images': [{'id': 7, 'file_name': '000007.jpg', 'width': 200, 'height': 100},
                   {'id': 9, 'file_name': '000009.jpg', 'width': 50, 'height': 50}],
        'categories': [{'id': 18, 'name': 'dog'}, {'id': 1, 'name': 'person'},
                       {'id': 3, 'name': 'car'}],
        'annotations': [
            {'id': 1, 'image_id': 7, 'category_id': 18, 'bbox': [20, 10, 40, 30], 'iscrowd': 0},
            {'id': 2, 'image_id': 7, 'category_id': 1, 'bbox': [0, 0, 200, 100], 'iscrowd': 0},
            {'id': 3, 'image_id': 7, 'category_id': 3, 'bbox': [5, 5, 10, 10], 'iscrowd': 1}]}
    path = tmp_path / 'instances.json'
    path.write_text(json.dumps(coco))
    coco_convert(path, tmp_path / 'labels' / 'val', images_dir=tmp_path / 'images' / 'val')
    lines = (tmp_path / 'labels' / 'val' / '000007.txt').read_text().splitlines()
    # ids sorted: person(1) -> 0, car(3) -> 1, dog(18) -> 2; the crowd car is skipped
    assert lines == ['2 0.200000 0.250000 0.200000 0.300000',
                     '0 0.500000 0.500000 1.000000 1.000000']
    assert (tmp_path / 'labels' / 'val' / '000009.txt').read_text() == ''
    assert (tmp_path / 'labels' / 'val.names').read_text().split() == ['person', 'car', 'dog']
    listed = (tmp_path / 'labels' / 'val.txt').read_text().split()
    assert listed[0].endswith('images/val/000007.jpg')
    assert label_path(tmp_path / 'images' / 'val' / '000007.jpg') == \
        tmp_path / 'labels' / 'val' / '000007.txt'


VOC_XML = """<annotation><size><width>100</width><height>50</height><depth>3</depth></size>
<object><name>dog</name><difficult>0</difficult>
  <bndbox><xmin>11</xmin><ymin>6</ymin><xmax>30</xmax><ymax>25</ymax></bndbox></object>
<object><name>person</name><difficult>1</difficult>
  <bndbox><xmin>1</xmin><ymin>1</ymin><xmax>100</xmax><ymax>50</ymax></bndbox></object>
</annotation>"""


def test_voc_to_yolo(tmp_path):
    voc = tmp_path / 'VOC2007'
    (voc / 'Annotations').mkdir(parents=True)
    (voc / 'ImageSets' / 'Main').mkdir(parents=True)
    (voc / 'JPEGImages').mkdir()
    (voc / 'Annotations' / '000001.xml').write_text(VOC_XML)
    (voc / 'ImageSets' / 'Main' / 'val.txt').write_text('000001\n')
    voc_convert(voc, 'val')
    # 1-based inclusive xmin=11..xmax=30 spans pixels 10..30: center 20, width 20
    assert (voc / 'labels' / '000001.txt').read_text() == \
        '11 0.200000 0.300000 0.200000 0.400000\n'
    voc_convert(voc, 'val', keep_difficult=True)
    assert len((voc / 'labels' / '000001.txt').read_text().splitlines()) == 2
    cv2.imwrite(str(voc / 'JPEGImages' / '000001.jpg'), np.zeros((50, 100, 3), np.uint8))
    items, summary = load_items(voc / 'val.txt', nc=20)  # the loader finds the labels
    assert summary['labels'] == 2 and summary['skipped'] == 0
